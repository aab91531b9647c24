// Progressive enhancement for the status page: while a backup runs, poll the
// JSON status and update the progress card; reload when the run ends so the
// server-rendered summary shows the result. The page works without this.
(function () {
  const card = document.getElementById('progress-card');
  if (!card) return;
  let wasRunning = card.dataset.running === 'true';
  const phases = {
    config: 'Contacting the server',
    'pre-commands': 'Running pre-backup commands',
    scanning: 'Looking for changes',
    hashing: 'Reading changed files',
    uploading: 'Uploading',
    committing: 'Saving to the server',
    finishing: 'Finishing',
  };
  const bytes = (n) => {
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let v = n;
    let u = 0;
    while (v >= 1024 && u < units.length - 1) {
      v /= 1024;
      u += 1;
    }
    return u === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
  };
  const set = (id, text) => {
    const el = document.getElementById(id);
    if (el) el.textContent = text;
  };
  async function poll() {
    try {
      const response = await fetch('/status.json', { headers: { accept: 'application/json' } });
      if (!response.ok) return;
      const status = await response.json();
      if (wasRunning && !status.running) {
        window.location.replace('/');
        return;
      }
      wasRunning = status.running;
      card.hidden = !status.running;
      const p = status.progress;
      if (p) {
        set('p-phase', phases[p.phase] || p.phase);
        set('p-scanned', p.filesScanned.toLocaleString('en'));
        set('p-checked', `${p.filesChecked.toLocaleString('en')} / ${p.filesToCheck.toLocaleString('en')}`);
        set('p-uploaded', bytes(p.bytesUploaded));
        const bar = document.getElementById('progress-bar');
        if (bar) {
          const pct = p.bytesToHash > 0 ? (100 * p.bytesHashed) / p.bytesToHash : p.filesToCheck > 0 ? (100 * p.filesChecked) / p.filesToCheck : 0;
          bar.value = Math.min(100, Math.round(pct));
        }
      }
    } catch {
      // the agent restarting: try again on the next tick
    }
  }
  setInterval(poll, 2000);
})();
