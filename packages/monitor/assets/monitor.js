// dispy monitor page. Plain script, no build step. Everything that comes from the cluster (node
// names, job ids, arguments) is set with textContent, never parsed as HTML.
'use strict';

(() => {
  const $ = (selector) => document.querySelector(selector);
  const state = { clusters: new Map(), showJobArgs: false, nodeJobs: undefined, sort: { key: 'name', dir: 1 } };
  let socket;
  let retryMs = 500;

  // ----- the live stream -----

  function connect() {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    socket = new WebSocket(`${scheme}://${location.host}/ws`);
    socket.addEventListener('open', () => {
      retryMs = 500;
      setLink(true);
      sendWatch();
    });
    socket.addEventListener('message', (event) => receive(JSON.parse(event.data)));
    socket.addEventListener('close', () => {
      setLink(false);
      // Back off up to 10 s between attempts; the server sends the whole state on reconnect.
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 10_000);
    });
  }

  function setLink(up) {
    const link = $('#link');
    link.textContent = up ? 'live' : 'reconnecting…';
    link.className = `link ${up ? 'up' : 'down'}`;
  }

  function receive(message) {
    if (message.type === 'state') {
      state.clusters.clear();
      state.showJobArgs = message.showJobArgs;
    }
    for (const id of message.removed || []) state.clusters.delete(id);
    for (const cluster of message.clusters) state.clusters.set(cluster.id, cluster.snapshot);
    if (message.nodeJobs !== undefined || message.type === 'state') state.nodeJobs = message.nodeJobs;
    render();
  }

  function sendWatch() {
    if (!socket || socket.readyState !== WebSocket.OPEN) return;
    const route = currentRoute();
    socket.send(JSON.stringify(route.node ? { type: 'watch', cluster: route.cluster, node: route.node } : { type: 'watch' }));
  }

  // ----- routes: #/<cluster> and #/<cluster>/node/<host:port> -----

  function currentRoute() {
    // A hash that is not valid percent-encoding (`#/%`) shows the first cluster rather than stopping the page.
    const decode = (part) => {
      try {
        return decodeURIComponent(part);
      } catch {
        return '';
      }
    };
    const parts = location.hash.replace(/^#\/?/, '').split('/').map(decode);
    let cluster = parts[0] || undefined;
    if (!cluster || !state.clusters.has(cluster)) cluster = state.clusters.keys().next().value;
    return { cluster, node: parts[1] === 'node' ? parts[2] : undefined };
  }

  function nodeHref(cluster, key) {
    return `#/${encodeURIComponent(cluster)}/node/${encodeURIComponent(key)}`;
  }

  window.addEventListener('hashchange', () => {
    state.nodeJobs = undefined;
    sendWatch();
    render();
  });

  // ----- rendering -----

  function render() {
    const route = currentRoute();
    renderPicker(route.cluster);
    const snapshot = route.cluster && state.clusters.get(route.cluster);
    show('#cluster-view', false);
    show('#node-view', false);
    show('#missing-view', false);
    if (!snapshot) {
      $('#missing-text').textContent = state.clusters.size === 0 ? 'No cluster is shown here.' : 'That cluster is no longer shown.';
      return show('#missing-view', true);
    }
    if (route.node) return renderNode(route.cluster, snapshot, route.node);
    renderCluster(route.cluster, snapshot);
  }

  function show(selector, visible) {
    $(selector).hidden = !visible;
  }

  function renderPicker(current) {
    const select = $('#cluster-select');
    $('#cluster-pick').hidden = state.clusters.size < 2;
    select.replaceChildren(
      ...[...state.clusters].map(([id, snapshot]) => {
        const option = document.createElement('option');
        option.value = id;
        option.textContent = snapshot.name;
        option.selected = id === current;
        return option;
      }),
    );
  }

  function renderCluster(id, snapshot) {
    show('#cluster-view', true);
    $('#cluster-name').textContent = snapshot.name;
    document.title = `${snapshot.name} · dispy monitor`;
    for (const [name, count] of Object.entries(snapshot.jobs)) {
      const cell = document.querySelector(`[data-count="${name}"]`);
      if (cell) cell.textContent = String(count);
    }
    renderThroughput(snapshot.throughput);
    const rows = [...snapshot.nodes].sort(compareNodes);
    syncRows(
      $('#nodes tbody'),
      rows.map((node) => nodeRow(id, node)),
    );
    $('#no-nodes').hidden = rows.length > 0;
    for (const th of document.querySelectorAll('#nodes th[data-sort]')) {
      if (th.dataset.sort === state.sort.key) th.setAttribute('aria-sort', state.sort.dir > 0 ? 'ascending' : 'descending');
      else th.removeAttribute('aria-sort');
    }
  }

  function nodeRow(cluster, node) {
    const row = document.createElement('tr');
    row.dataset.node = row.dataset.key = node.key;
    const link = document.createElement('a');
    link.href = nodeHref(cluster, node.key);
    link.textContent = node.name || node.ipAddr;
    const avail = node.availInfo;
    row.append(
      cell(link),
      cell(node.key),
      cell(`${node.cpus} / ${node.availCpus}`, 'num cpus'),
      cell(String(node.busy), 'num busy'),
      cell(String(node.jobsDone), 'num done'),
      cell(node.secPerJob.toFixed(2), 'num'),
      cell(node.cpuTime.toFixed(1), 'num'),
      cell(bytes(node.tx), 'num'),
      cell(bytes(node.rx), 'num'),
      cell(avail ? percentBar(avail.cpu) : '–', 'num'),
      cell(avail ? bytes(avail.memory) : '–', 'num'),
      cell(avail ? bytes(avail.disk) : '–', 'num'),
      timeCell(node.updateTime, 'ago'),
    );
    return row;
  }

  function compareNodes(a, b) {
    const value = (node) =>
      state.sort.key === 'cpuIdle' || state.sort.key === 'memory' || state.sort.key === 'disk'
        ? (node.availInfo?.[state.sort.key === 'cpuIdle' ? 'cpu' : state.sort.key] ?? -1)
        : node[state.sort.key];
    const x = value(a);
    const y = value(b);
    const order = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y));
    return order * state.sort.dir || a.key.localeCompare(b.key);
  }

  function renderThroughput(series) {
    const svg = $('#throughput');
    const ns = 'http://www.w3.org/2000/svg';
    // Buckets of 10 s, shown per minute.
    const perMinute = series.map((count) => count * 6);
    const max = Math.max(1, ...perMinute);
    const step = 600 / Math.max(1, perMinute.length - 1);
    const points = perMinute.map((value, i) => `${(i * step).toFixed(1)},${(78 - (value / max) * 74).toFixed(1)}`);
    const line = document.createElementNS(ns, 'polyline');
    line.setAttribute('points', points.join(' '));
    const area = document.createElementNS(ns, 'polygon');
    area.setAttribute('points', `0,80 ${points.join(' ')} 600,80`);
    svg.replaceChildren(area, line);
    // The last full bucket: the current one is partial.
    const recent = perMinute.length > 1 ? perMinute[perMinute.length - 2] : 0;
    $('#rate').textContent = `· now ${recent} / min, peak ${Math.max(0, ...perMinute)} / min`;
  }

  function renderNode(cluster, snapshot, key) {
    const node = snapshot.nodes.find((n) => n.key === key);
    if (!node) {
      $('#missing-text').textContent = `Node ${key} does not serve ${snapshot.name} (any more).`;
      return show('#missing-view', true);
    }
    show('#node-view', true);
    $('#back').href = `#/${encodeURIComponent(cluster)}`;
    $('#back').textContent = `← ${snapshot.name}`;
    $('#node-title').textContent = node.name || node.ipAddr;
    document.title = `${node.name} · dispy monitor`;
    const facts = [
      ['Address', node.key],
      ['CPUs', `${node.cpus} used of ${node.availCpus}`],
      ['Running', String(node.busy)],
      ['Jobs done', String(node.jobsDone)],
      ['Average', `${node.secPerJob.toFixed(2)} s a job`],
      ['CPU time', `${node.cpuTime.toFixed(1)} s`],
      ['Sent / received', `${bytes(node.tx)} / ${bytes(node.rx)}`],
      [
        'Available',
        node.availInfo
          ? `CPU ${node.availInfo.cpu.toFixed(0)} % idle, memory ${bytes(node.availInfo.memory)}, disk ${bytes(node.availInfo.disk)}`
          : '–',
      ],
    ];
    $('#node-facts').replaceChildren(
      ...facts.flatMap(([term, value]) => {
        const dt = document.createElement('dt');
        dt.textContent = term;
        const dd = document.createElement('dd');
        dd.textContent = value;
        return [dt, dd];
      }),
    );
    const updated = document.createElement('dt');
    updated.textContent = 'Updated';
    const since = document.createElement('dd');
    since.dataset.ago = String(node.updateTime);
    since.textContent = ago(node.updateTime);
    $('#node-facts').append(updated, since);
    const input = $('#cpus input');
    if (document.activeElement !== input) input.value = String(node.cpus);
    input.max = String(node.availCpus);
    const jobs = state.nodeJobs && state.nodeJobs.cluster === cluster && state.nodeJobs.node === key ? state.nodeJobs.jobs : [];
    for (const th of document.querySelectorAll('#jobs .args')) th.hidden = !state.showJobArgs;
    syncRows(
      $('#jobs tbody'),
      jobs.map((job) => jobRow(cluster, job)),
    );
    $('#no-jobs').hidden = jobs.length > 0;
  }

  function jobRow(cluster, job) {
    const row = document.createElement('tr');
    row.dataset.job = row.dataset.key = job.key;
    const cancel = document.createElement('button');
    cancel.type = 'button';
    cancel.className = 'cancel';
    cancel.textContent = 'Cancel';
    cancel.addEventListener('click', () => act({ action: 'cancelJob', cluster, job: job.key }, `job ${job.key} cancelled`));
    const args = cell(job.args ?? '', 'wrap args');
    args.hidden = !state.showJobArgs;
    row.append(cell(job.key), cell(job.id, 'wrap'), args, timeCell(job.startTime, 'since', 'num running-for'), cell(cancel));
    return row;
  }

  /**
   * Puts `rows` (each with data-key) in `body`, keeping the row and cell elements that did not
   * change: a push never replaces a button or a link under the pointer.
   */
  function syncRows(body, rows) {
    const old = new Map([...body.children].map((row) => [row.dataset.key, row]));
    const kept = rows.map((row) => {
      const previous = old.get(row.dataset.key);
      if (!previous || previous.children.length !== row.children.length) return row;
      [...row.children].forEach((fresh, i) => {
        const current = previous.children[i];
        if (current.textContent !== fresh.textContent || current.className !== fresh.className || current.hidden !== fresh.hidden) {
          current.replaceWith(fresh);
        }
      });
      return previous;
    });
    if (kept.length !== body.children.length || kept.some((row, i) => body.children[i] !== row)) body.replaceChildren(...kept);
  }

  /** A cell showing how long ago `time` was (`ago`) or how long since (`since`), kept up to date by `refreshTimes`. */
  function timeCell(time, kind, className) {
    const td = cell(kind === 'ago' ? ago(time) : duration(time), className);
    td.dataset[kind] = String(time);
    return td;
  }

  function refreshTimes() {
    for (const element of document.querySelectorAll('[data-ago]')) element.textContent = ago(Number(element.dataset.ago));
    for (const element of document.querySelectorAll('[data-since]')) element.textContent = duration(Number(element.dataset.since));
  }

  function cell(content, className) {
    const td = document.createElement('td');
    if (className) td.className = className;
    if (typeof content === 'string') td.textContent = content;
    else td.append(content);
    return td;
  }

  function percentBar(percent) {
    const wrap = document.createElement('span');
    const bar = document.createElement('span');
    bar.className = 'bar';
    const fill = document.createElement('span');
    fill.style.width = `${Math.max(0, Math.min(100, percent))}%`;
    bar.append(fill);
    wrap.append(bar, document.createTextNode(`${percent.toFixed(0)} %`));
    return wrap;
  }

  // ----- actions -----

  async function act(body, success) {
    const notice = $('#notice');
    try {
      const response = await fetch('/api/action', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
        credentials: 'same-origin',
      });
      const answer = await response.json().catch(() => ({ ok: false, error: `HTTP ${response.status}` }));
      notice.className = answer.ok ? '' : 'error';
      notice.textContent = answer.ok ? (answer.cpus !== undefined ? `${success}: ${answer.cpus}` : success) : answer.error;
    } catch (error) {
      notice.className = 'error';
      notice.textContent = `the server did not answer: ${error.message}`;
    }
  }

  $('#cpus').addEventListener('submit', (event) => {
    event.preventDefault();
    const route = currentRoute();
    const cpus = Number(new FormData(event.target).get('cpus'));
    act({ action: 'setNodeCpus', cluster: route.cluster, node: route.node, cpus }, 'CPUs now used');
  });
  $('#deallocate').addEventListener('click', () => {
    const route = currentRoute();
    act({ action: 'deallocateNode', cluster: route.cluster, node: route.node }, `${route.node} deallocated: it gets no new jobs`);
  });
  $('#close-node').addEventListener('click', () => {
    const route = currentRoute();
    if (!confirm(`Close ${route.node} for this cluster?`)) return;
    act({ action: 'closeNode', cluster: route.cluster, node: route.node }, `${route.node} closed`);
  });
  $('#allocate').addEventListener('submit', (event) => {
    event.preventDefault();
    const host = String(new FormData(event.target).get('host')).trim();
    act({ action: 'allocateNode', cluster: currentRoute().cluster, host }, `${host} allocated`);
  });
  $('#cluster-select').addEventListener('change', (event) => {
    location.hash = `#/${encodeURIComponent(event.target.value)}`;
  });
  for (const th of document.querySelectorAll('#nodes th[data-sort]')) {
    th.addEventListener('click', () => {
      const key = th.dataset.sort;
      state.sort = { key, dir: state.sort.key === key ? -state.sort.dir : 1 };
      render();
    });
  }

  // ----- formatting -----

  function bytes(n) {
    if (n < 1024) return `${n} B`;
    const units = ['K', 'M', 'G', 'T'];
    let value = n / 1024;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit++;
    }
    return `${value.toFixed(1)} ${units[unit]}`;
  }

  function duration(since) {
    if (!since) return '–';
    const s = Math.max(0, Math.round((Date.now() - since) / 1000));
    return s < 60
      ? `${s} s`
      : s < 3600
        ? `${Math.floor(s / 60)} min ${s % 60} s`
        : `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  }

  function ago(time) {
    return `${duration(time)} ago`;
  }

  // Running times and "updated … ago" move on between pushes.
  setInterval(refreshTimes, 1000);
  connect();
})();
