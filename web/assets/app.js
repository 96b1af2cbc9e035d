// Vigil's page script: small, no dependencies, loaded as an ES module.
// Everything it shows comes from the server-rendered, escaped page.

// "/" focuses the query box, as in most log tools.
document.addEventListener("keydown", (event) => {
  const box = document.getElementById("q");
  if (event.key === "/" && box && document.activeElement !== box) {
    event.preventDefault();
    box.focus();
    box.select();
  }
});

// Show times in the reader's time zone, keeping the exact UTC value as a tooltip.
for (const element of document.querySelectorAll("time[datetime]")) {
  const when = new Date(element.getAttribute("datetime"));
  if (!Number.isNaN(when.getTime())) {
    element.title = element.getAttribute("datetime");
    element.textContent = when.toLocaleString(undefined, { hour12: false }) + "." + String(when.getMilliseconds()).padStart(3, "0");
  }
}
