// Path routing: the gateway answers every dashboard path with index.html.
import { useEffect, useState } from "preact/hooks";

export function navigate(path: string): void {
  history.pushState(null, "", path);
  window.dispatchEvent(new Event("helpdesk:navigate"));
}

export function usePath(): string {
  const [path, setPath] = useState(window.location.pathname + window.location.search);
  useEffect(() => {
    const update = (): void => setPath(window.location.pathname + window.location.search);
    window.addEventListener("popstate", update);
    window.addEventListener("helpdesk:navigate", update);
    return () => {
      window.removeEventListener("popstate", update);
      window.removeEventListener("helpdesk:navigate", update);
    };
  }, []);
  return path;
}

/** A same-page link: a real <a href> (keyboard, middle-click) that routes without a reload. */
export function onLinkClick(event: MouseEvent): void {
  const anchor = event.currentTarget as HTMLAnchorElement;
  if (event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
  event.preventDefault();
  navigate(anchor.getAttribute("href") ?? "/");
}
