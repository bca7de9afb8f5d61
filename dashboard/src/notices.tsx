// How a page says what went wrong (an alert, read out at once) or what was done (a status).
import type { JSX } from "preact";

/** A refusal or failure in words; nothing when there is none. */
export function ErrorAlert({ text }: { text: string | null }): JSX.Element | null {
  return text === null ? null : (
    <p class="error" role="alert">
      {text}
    </p>
  );
}

/** The outcome of an admin's action: an alert when it failed, a status when it worked. */
export function Outcome({ message }: { message: { text: string; error: boolean } | null }): JSX.Element | null {
  return message === null ? null : (
    <p class={message.error ? "error" : "ok"} role={message.error ? "alert" : "status"}>
      {message.text}
    </p>
  );
}
