// Agent Hive dashboard: the Spend panel. What the agents spent today (UTC) and over the last 7 days,
// per pool and per team, from /api/v1/costs/ (which scopes it: a team member sees their own team's
// spend, staff every team's). Refreshed every 30 seconds; independent of the event stream.
(() => {
  "use strict";

  const REFRESH_MS = 30000;
  const DAY_MS = 24 * 3600 * 1000;

  const { el } = window.hiveDom; // dashboard.js

  async function spend(groupBy, since) {
    const params = new URLSearchParams({ group_by: groupBy, since: since.toISOString() });
    const response = await fetch(`/api/v1/costs/?${params}`, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`/api/v1/costs/ answered ${response.status}`);
    const body = await response.json();
    return new Map(body.rows.map((row) => [row.group, Number(row.cost_usd)]));
  }

  const usd = (amount) => `$${amount.toFixed(4)}`;

  function render(table, today, week) {
    const groups = [...week.keys()].sort((a, b) => week.get(b) - week.get(a) || a.localeCompare(b));
    const rows = groups.map((group) =>
      el("tr", { dataset: { group } },
        el("td", { class: "name" }, group),
        el("td", { class: "usd today" }, usd(today.get(group) || 0)),
        el("td", { class: "usd week" }, usd(week.get(group) || 0))));
    if (!rows.length) rows.push(el("tr", { class: "empty" }, el("td", { colspan: "3" }, "nothing spent in the last 7 days")));
    document.querySelector(`${table} tbody`).replaceChildren(...rows);
  }

  async function load() {
    const now = new Date();
    const today = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()));
    const week = new Date(today.getTime() - 6 * DAY_MS); // today and the six days before it
    try {
      const [poolsToday, poolsWeek, teamsToday, teamsWeek] = await Promise.all([
        spend("pool", today), spend("pool", week), spend("team", today), spend("team", week)]);
      render("#spend-pools", poolsToday, poolsWeek);
      render("#spend-teams", teamsToday, teamsWeek);
      document.querySelector("#spend-updated").textContent = `at ${now.toLocaleTimeString()}`;
    } catch (err) {
      document.querySelector("#spend-updated").textContent = `could not load: ${err.message}`;
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    load();
    setInterval(load, REFRESH_MS);
  });
})();
