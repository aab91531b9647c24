// Progressive enhancements only: every page works without this file.
document.addEventListener('submit', (event) => {
  const form = event.target;
  if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    event.preventDefault();
  }
});
document.addEventListener('focusin', (event) => {
  const input = event.target;
  if (input instanceof HTMLInputElement && input.hasAttribute('data-select-on-focus')) input.select();
});

// Absolute times arrive as <time datetime="…Z" title="… UTC" data-local> with UTC
// text (so they read right without this file); show them in the viewer's time
// zone, to the second, and keep UTC in the title.
function localTimeText(date) {
  const parts = {};
  const format = new Intl.DateTimeFormat('en-US', {
    year: 'numeric', month: '2-digit', day: '2-digit',
    hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23', timeZoneName: 'short',
  });
  for (const part of format.formatToParts(date)) parts[part.type] = part.value;
  return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}:${parts.second} ${parts.timeZoneName}`;
}
for (const element of document.querySelectorAll('time[datetime][data-local]')) {
  const date = new Date(element.getAttribute('datetime'));
  if (!Number.isNaN(date.getTime())) element.textContent = localTimeText(date);
}

// The client page's live panel: while a backup runs, poll the client's
// live.json (decision 124) and show phase, files, bytes, rate and ETA.
const livePanel = document.getElementById('live-progress');
if (livePanel) {
  const bytes = (n) => {
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let value = n;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
    return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
  };
  const seconds = (s) => (s < 60 ? `${s} s` : s < 3600 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`);
  const facts = livePanel.querySelector('[data-live-facts]');
  const bar = livePanel.querySelector('[data-live-bar]');
  const phase = livePanel.querySelector('[data-live-phase]');
  const render = (view) => {
    livePanel.hidden = !view.running;
    const p = view.progress;
    phase.textContent = p ? p.phase : 'running';
    const rows = p
      ? [
          ['Files', `${p.filesChecked} of ${p.filesToCheck} checked · ${p.filesScanned} scanned · ${p.filesCommitted} committed`],
          ['Bytes', `${bytes(p.bytesHashed)} of ${bytes(p.bytesToHash)} hashed · ${bytes(p.bytesUploaded)} uploaded`],
          ['Rate', `${bytes(p.bytesPerSecond)}/s`],
          ['ETA', p.etaSeconds === null ? '-' : seconds(p.etaSeconds)],
        ]
      : [['Progress', 'waiting for the agent\u2019s first report']];
    facts.replaceChildren(...rows.flatMap(([k, v]) => {
      const dt = document.createElement('dt');
      dt.textContent = k;
      const dd = document.createElement('dd');
      dd.textContent = v;
      return [dt, dd];
    }));
    if (p && p.bytesToHash > 0) bar.value = Math.min(100, Math.round((100 * p.bytesHashed) / p.bytesToHash));
    else bar.removeAttribute('value');
  };
  const poll = async () => {
    try {
      const response = await fetch(livePanel.dataset.liveUrl, { headers: { accept: 'application/json' }, credentials: 'same-origin' });
      if (response.ok) render(await response.json());
    } catch {
      // The next poll tries again.
    }
    setTimeout(poll, document.hidden ? 10000 : 1000);
  };
  void poll();
}

// A restore job's page: while the job is queued or running, poll its
// status.json and reload when the status or the progress changes.
const restoreJob = document.getElementById('restore-job');
if (restoreJob && restoreJob.dataset.open === 'yes') {
  let last = null;
  const poll = async () => {
    try {
      const response = await fetch(restoreJob.dataset.statusUrl, { headers: { accept: 'application/json' }, credentials: 'same-origin' });
      if (response.ok) {
        const text = await response.text();
        if (last !== null && text !== last) return window.location.replace(window.location.pathname);
        last = text;
      }
    } catch {
      // the next poll tries again
    }
    setTimeout(poll, 1500);
  };
  poll();
}
