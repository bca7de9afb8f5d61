"""Query parameters of the dashboard API, shared by the gateway (which publishes them in its
OpenAPI document and passes them on) and the service that owns the data (which applies them),
so that no parameter is declared twice. FastAPI reads each model as a set of query parameters
(`Annotated[TicketQuery, Query()]`)."""

from pydantic import BaseModel, Field

from .api import TicketSort
from .formats import AssigneeFilterText, TicketCursorText
from .tickets import TicketEventType, TicketPriority, TicketStatus
from .widget import RequestStatus

SEARCH = (
    "Words the subject must contain, in any order, ignoring case; each word matches "
    "anywhere in the subject and `%`, `_`, `\\` are literal."
)


class TicketFilters(BaseModel):
    """The filters the ticket list and the per-status counts share."""

    priority: list[TicketPriority] | None = None
    assignee_id: AssigneeFilterText | None = Field(
        default=None, description="Member id, `me` or `none`."
    )
    q: str | None = Field(default=None, max_length=200, description=SEARCH)


class TicketQuery(TicketFilters):
    status: list[TicketStatus] | None = None
    sort: TicketSort = TicketSort.UPDATED
    cursor: TicketCursorText | None = Field(
        default=None, description="`next_cursor` of the page before."
    )
    limit: int = Field(default=50, ge=1, le=200)


class ActivityQuery(BaseModel):
    cursor: str | None = Field(
        default=None, pattern=r"^[0-9]{1,9}$", description="`next_cursor` of the page before."
    )
    type: list[TicketEventType] | None = Field(
        default=None, max_length=20, description="Only these event types."
    )
    limit: int = Field(default=100, ge=1, le=500)


class TicketRequestQuery(BaseModel):
    outcome: RequestStatus | None = None
    limit: int = Field(default=100, ge=1, le=500)


class RefusalQuery(BaseModel):
    minutes: int = Field(default=60, ge=1, le=1440, description="How far back, in minutes.")
