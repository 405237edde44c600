// Skyclaw's dashboard: one page with hash routes (#/overview, #/jobs,
// #/job/<id>, #/hosts, #/log) over the coordinator's JSON API.
//
// Two rules hold throughout. The credential lives in this tab's
// sessionStorage only and travels in the x-skyclaw-token header, never in
// a URL or a cookie. Everything the API returns is shown as text
// (textContent, attributes set one by one), never parsed as HTML: job
// commands, environments and output are a stranger's words.
'use strict';

const CREDENTIAL_KEY = 'skyclaw.token';
const TOKEN_HEADER = 'x-skyclaw-token';
const JOBS_PER_PAGE = 50;
const EVENTS_SHOWN = 50;
const STATUSES = ['queued', 'leased', 'completed', 'failed', 'cancelled'];
const MASK = '••••••';

// ---- Elements -------------------------------------------------------------

// Makes an element. `attributes` go through setAttribute (a class, an href,
// a data- field); children are nodes or strings, strings become text.
function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null || value === false) continue;
    node.setAttribute(name, value === true ? '' : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const SVG = 'http://www.w3.org/2000/svg';
function svg(tag, attributes, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    node.setAttribute(name, String(value));
  }
  return append(node, children);
}

function table(headings, rows) {
  return el('table', {},
    el('thead', {}, el('tr', {}, headings.map((h) => el('th', {}, h)))),
    el('tbody', {}, rows.length
      ? rows
      : el('tr', {}, el('td', { colspan: headings.length, class: 'muted' }, 'Nothing here.'))));
}

function fields(pairs) {
  return el('dl', { class: 'fields' },
    pairs.filter(([, value]) => value !== undefined && value !== null && value !== '')
      .map(([name, value]) => [el('dt', {}, name), el('dd', {}, value)]));
}

function statusBadge(status) {
  return el('span', { class: `status status-${status}` }, status);
}

// A link to a job's page; `short` shows the id's first 8 characters (the
// full id is the link's title).
function jobLink(id, short) {
  return el('a', { href: `#/job/${encodeURIComponent(id)}`, class: 'mono', title: id },
    short ? id.slice(0, 8) : id);
}

function time(ms) {
  if (!ms) return '';
  return new Date(ms).toISOString().replace('T', ' ').slice(0, 19) + ' UTC';
}

function ago(ms) {
  if (!ms) return 'never';
  const seconds = Math.round((Date.now() - ms) / 1000);
  if (seconds < 0) return 'just now';
  if (seconds < 90) return `${seconds} s ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
  return `${Math.round(seconds / 3600)} h ago`;
}

// A word as a POSIX shell would need it written.
function quoted(word) {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, "'\\''")}'`;
}

function commandLine(payload) {
  if (payload.kind === 'shell') return [payload.command, ...(payload.args || [])].map(quoted).join(' ');
  const args = payload.args === undefined ? ['--run'] : payload.args;
  return ['automaton', ...args].map(quoted).join(' ');
}

// A copy of `value` with every `env` map's values masked, wherever it sits
// (a payload, an event): environments carry secrets.
function masked(value) {
  if (Array.isArray(value)) return value.map(masked);
  if (!value || typeof value !== 'object') return value;
  const copy = {};
  for (const [key, inner] of Object.entries(value)) {
    if (key === 'env' && inner && typeof inner === 'object' && !Array.isArray(inner)) {
      copy.env = Object.fromEntries(Object.keys(inner).map((name) => [name, MASK]));
    } else {
      copy[key] = masked(inner);
    }
  }
  return copy;
}

// ---- The API --------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

const credential = {
  get: () => sessionStorage.getItem(CREDENTIAL_KEY),
  set: (token) => sessionStorage.setItem(CREDENTIAL_KEY, token),
  clear: () => sessionStorage.removeItem(CREDENTIAL_KEY),
};

async function api(method, path, body) {
  const headers = { [TOKEN_HEADER]: credential.get() || '' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch (e) {
    throw new ApiError(0, `could not reach the coordinator (${e.message})`);
  }
  const text = await response.text();
  let data = null;
  try {
    data = JSON.parse(text);
  } catch {
    data = null;
  }
  if (!response.ok) {
    const reason = (data && data.error) || text || response.statusText;
    throw new ApiError(response.status, `${response.status}: ${reason}`);
  }
  return data;
}

const get = (path) => api('GET', path);
const post = (path, body) => api('POST', path, body);

function query(parameters) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(parameters)) {
    if (value !== undefined && value !== null && value !== '') search.set(name, value);
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

// ---- Frame: sign-in, errors, navigation, refresh -----------------------------

const frame = {
  view: () => document.getElementById('view'),
  // Bumped on every navigation: an answer that arrives for an older page
  // is dropped instead of drawn over the current one.
  generation: 0,
  timer: null,
};

function showError(message) {
  const box = document.getElementById('error');
  box.textContent = message;
  box.hidden = !message;
}

function signedIn(yes) {
  document.getElementById('login').hidden = yes;
  document.getElementById('nav').hidden = !yes;
  document.getElementById('sign-out').hidden = !yes;
  frame.view().hidden = !yes;
  if (!yes) document.getElementById('node').textContent = '';
}

function showLogin(message) {
  stopRefresh();
  credential.clear();
  signedIn(false);
  showError('');
  const error = document.getElementById('login-error');
  error.textContent = message || '';
  error.hidden = !message;
  document.getElementById('token').focus();
}

async function signIn(event) {
  event.preventDefault();
  const input = document.getElementById('token');
  credential.set(input.value);
  input.value = '';
  try {
    const status = await get('/v1/status');
    document.getElementById('login-error').hidden = true;
    signedIn(true);
    document.getElementById('node').textContent = `node ${status.nodeId}`;
    route();
  } catch (e) {
    showLogin(e.status === 401
      ? `The coordinator refused this token (${e.message}).`
      : `Could not sign in: ${e.message}`);
  }
}

function stopRefresh() {
  if (frame.timer !== null) clearInterval(frame.timer);
  frame.timer = null;
}

// Draws a page now and again every `everyMs` while it is shown; a failed
// draw shows its error and keeps the last good one on screen.
function keepFresh(draw, everyMs) {
  const generation = frame.generation;
  const run = async () => {
    try {
      const page = await draw();
      if (generation !== frame.generation || !page) return;
      frame.view().replaceChildren(page);
      showError('');
    } catch (e) {
      if (generation !== frame.generation) return;
      if (e.status === 401) {
        showLogin(`The coordinator refused the token (${e.message}).`);
        return;
      }
      showError(e.message);
    }
  };
  run();
  if (everyMs) frame.timer = setInterval(run, everyMs);
  return run;
}

function parseHash() {
  const hash = location.hash.replace(/^#\/?/, '');
  const [path, search] = hash.split('?', 2);
  const [page, ...rest] = path.split('/');
  return { page: page || 'overview', id: rest.join('/'), params: new URLSearchParams(search || '') };
}

function route() {
  stopRefresh();
  frame.generation += 1;
  showError('');
  if (!credential.get()) {
    showLogin('');
    return;
  }
  const { page, id, params } = parseHash();
  for (const link of document.querySelectorAll('#nav a')) {
    link.classList.toggle('current', link.dataset.page === page
      || (page === 'job' && link.dataset.page === 'jobs'));
  }
  const pages = { overview, jobs, job, hosts, log };
  const show = pages[page] || overview;
  frame.view().replaceChildren(el('p', { class: 'muted' }, 'Loading…'));
  show(decodeURIComponent(id), params);
}

// ---- Overview ---------------------------------------------------------------

function overview() {
  keepFresh(async () => {
    const [summary, cluster, head] = await Promise.all([
      get('/v1/summary'), get('/v1/cluster'), get('/v1/log/head'),
    ]);
    const cards = el('div', { class: 'cards' }, STATUSES.map((status) =>
      el('a', { class: 'card', href: `#/jobs?status=${status}` },
        el('span', { class: `count status-${status}` }, summary.jobs[status]),
        status)));
    return el('div', { 'data-ready': 'overview' },
      el('h1', {}, 'Overview'),
      cards,
      el('h2', {}, 'The last hour, per minute'),
      activityChart(summary),
      pickup(summary),
      el('div', { class: 'grid' },
        el('div', {},
          el('h2', {}, 'Queue by priority'),
          table(['Priority', 'Queued'], summary.queuedByPriority.map((row) =>
            el('tr', {}, el('td', {}, row.priority), el('td', {}, row.depth))))),
        el('div', {},
          el('h2', {}, 'Queue by required capability'),
          table(['Capability', 'Queued'], summary.queuedByCapability.map((row) =>
            el('tr', {},
              el('td', {}, row.capability === ''
                ? el('span', { class: 'muted' }, '(none required)')
                : el('a', { href: `#/jobs?status=queued&capability=${encodeURIComponent(row.capability)}` }, row.capability)),
              el('td', {}, row.depth)))))),
      el('h2', {}, 'Cluster'),
      fields([
        ['Answering node', cluster.nodeId],
        ['Leader', cluster.leader || 'none'],
        ['Term', cluster.term],
      ]),
      table(['Member', 'URL', 'Voter', 'Head', 'Lag'], cluster.members.map((member) =>
        el('tr', {},
          el('td', {}, member.name, member.name === cluster.leader ? ' (leader)' : ''),
          el('td', { class: 'wrap' }, member.url),
          el('td', {}, member.voter ? 'yes' : 'learner'),
          el('td', {}, member.headSeq === undefined ? 'no answer' : member.headSeq),
          el('td', {}, member.lag === undefined ? '' : member.lag)))),
      el('h2', {}, 'Log head'),
      fields([
        ['Seq', head.seq],
        ['Hash', el('span', { class: 'mono' }, head.hash)],
        ['Cluster', el('span', { class: 'mono' }, head.clusterId)],
      ]));
  }, 5000);
}

// How long jobs waited from enqueue to their first lease, over the hour.
function pickup(summary) {
  const pickedUp = summary.perMinute.reduce((sum, m) => sum + (m.pickedUp || 0), 0);
  const waited = summary.perMinute.reduce((sum, m) => sum + (m.pickupMs || 0), 0);
  const mean = pickedUp === 0 ? 'no job picked up' : `${Math.round(waited / pickedUp)} ms`;
  return fields([
    ['Pickup latency (mean)', el('span', { 'data-pickup': '' }, mean)],
    ['Jobs picked up', pickedUp],
  ]);
}

// Enqueued, completed and failed jobs per minute over the hour before the
// summary's time, as three lines.
function activityChart(summary) {
  const minute = 60000;
  const width = 1000;
  const height = 200;
  const pad = { left: 36, right: 12, top: 12, bottom: 24 };
  const last = Math.floor(summary.at / minute) * minute;
  const first = last - 59 * minute;
  const byMinute = new Map(summary.perMinute.map((m) => [m.minute, m]));
  const minutes = Array.from({ length: 60 }, (_, i) => byMinute.get(first + i * minute) || {});
  const series = ['enqueued', 'completed', 'failed'];
  const top = Math.max(1, ...minutes.flatMap((m) => series.map((s) => m[s] || 0)));
  const x = (i) => pad.left + (i * (width - pad.left - pad.right)) / 59;
  const y = (v) => height - pad.bottom - (v * (height - pad.top - pad.bottom)) / top;
  const chart = svg('svg', {
    class: 'chart', viewBox: `0 0 ${width} ${height}`, role: 'img',
    'aria-label': 'jobs enqueued, completed and failed per minute over the last hour',
  },
  svg('line', { class: 'axis', x1: pad.left, y1: y(0), x2: width - pad.right, y2: y(0) }),
  svg('line', { class: 'axis', x1: pad.left, y1: y(top), x2: width - pad.right, y2: y(top) }),
  svg('text', { x: 4, y: y(top) + 4 }, String(top)),
  svg('text', { x: 4, y: y(0) + 4 }, '0'),
  svg('text', { x: pad.left, y: height - 6 }, '60 min ago'),
  svg('text', { x: width - pad.right - 20, y: height - 6 }, 'now'),
  series.map((s) => svg('polyline', {
    class: s,
    points: minutes.map((m, i) => `${x(i).toFixed(1)},${y(m[s] || 0).toFixed(1)}`).join(' '),
  })));
  const totals = series.map((s) => minutes.reduce((sum, m) => sum + (m[s] || 0), 0));
  const legend = el('div', { class: 'legend' }, series.map((s, i) =>
    el('span', { class: `swatch-${s}` }, `■ ${s} ${totals[i]}`)));
  return el('div', {}, legend, chart);
}

// ---- Jobs -------------------------------------------------------------------

function jobs(_, params) {
  const filter = {
    status: params.get('status') || '',
    host: params.get('host') || '',
    capability: params.get('capability') || '',
    command: params.get('command') || '',
    order: params.get('order') || 'newest',
  };
  // The cursors of the pages before this one, to go back.
  const cursors = [];
  let after = '';
  let live = true;
  let notice = null;

  const form = el('form', { class: 'filters' },
    el('label', {}, 'Status', el('select', { name: 'status' },
      el('option', { value: '' }, 'any'),
      STATUSES.map((s) => el('option', { value: s, selected: s === filter.status }, s)))),
    el('label', {}, 'Host', el('input', { name: 'host', value: filter.host, size: 14 })),
    el('label', {}, 'Capability', el('input', { name: 'capability', value: filter.capability, size: 12 })),
    el('label', {}, 'Command contains', el('input', { name: 'command', value: filter.command, size: 18 })),
    el('label', {}, 'Order', el('select', { name: 'order' },
      el('option', { value: 'newest', selected: filter.order === 'newest' }, 'newest first'),
      el('option', { value: 'oldest', selected: filter.order === 'oldest' }, 'oldest first'))),
    el('button', { type: 'submit' }, 'Filter'));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const data = new FormData(form);
    location.hash = `#/jobs${query(Object.fromEntries(data.entries()))}`;
  });

  const liveBox = el('input', { type: 'checkbox', checked: true, id: 'live' });
  liveBox.addEventListener('change', () => { live = liveBox.checked; });

  const enqueueForm = el('form', { id: 'enqueue' },
    el('label', {}, 'Command', el('input', { name: 'command', required: true, placeholder: 'sh' })),
    el('label', {}, 'Arguments, one per line', el('textarea', { name: 'args', rows: 2, placeholder: '-c\necho hello' })),
    el('label', {}, 'Required capabilities, comma-separated', el('input', { name: 'capabilities' })),
    el('label', {}, 'Priority', el('input', { name: 'priority', type: 'number', value: 0 })),
    el('label', {}, 'Max attempts', el('input', { name: 'maxAttempts', type: 'number', min: 1, max: 100, value: 3 })),
    el('div', {}, el('button', { type: 'submit' }, 'Enqueue')));
  // Made once, so a redraw keeps it open or closed as it was.
  const enqueuePanel = el('details', {}, el('summary', {}, 'Enqueue a shell job'), enqueueForm);
  enqueueForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const data = new FormData(enqueueForm);
    const args = String(data.get('args')).split('\n').map((a) => a.replace(/\r$/, '')).filter((a) => a !== '');
    const capabilities = String(data.get('capabilities')).split(',').map((c) => c.trim()).filter(Boolean);
    try {
      const answer = await post('/v1/jobs', {
        payload: { kind: 'shell', command: String(data.get('command')), args },
        requirement: { requiredCapabilities: capabilities },
        priority: Number(data.get('priority') || 0),
        maxAttempts: Number(data.get('maxAttempts') || 3),
      });
      notice = el('p', { class: 'notice' }, 'Enqueued job ', jobLink(answer.job.id), '.');
      enqueueForm.reset();
      refresh();
    } catch (e) {
      showError(`Enqueue failed: ${e.message}`);
    }
  });

  const draw = async () => {
    const page = await get(`/v1/jobs${query({ ...filter, limit: JOBS_PER_PAGE, after })}`);
    const rows = page.jobs.map((job) => el('tr', { 'data-job': job.id },
      el('td', {}, jobLink(job.id, true)),
      el('td', {}, statusBadge(job.status), job.cancelRequested && !isFinal(job) ? ' (cancelling)' : ''),
      el('td', { class: 'wrap mono' }, commandLine(job.payload)),
      el('td', {}, job.assignedHostId || ''),
      el('td', {}, `${job.attempts}/${job.maxAttempts}`),
      el('td', {}, job.priority),
      el('td', {}, time(job.createdAt)),
      el('td', {}, cancelButton(job, refresh))));
    const previous = el('button', { type: 'button', class: 'secondary', disabled: cursors.length === 0 }, '← Previous');
    previous.addEventListener('click', () => { after = cursors.pop() || ''; refresh(); });
    const next = el('button', { type: 'button', class: 'secondary', disabled: !page.next }, 'Next →');
    next.addEventListener('click', () => { cursors.push(after); after = page.next; refresh(); });
    return el('div', { 'data-ready': 'jobs' },
      el('h1', {}, 'Jobs'),
      enqueuePanel,
      notice,
      form,
      table(['Job', 'Status', 'Command', 'Host', 'Attempts', 'Priority', 'Created', ''], rows),
      el('div', { class: 'pager' }, previous, next,
        el('label', { class: 'inline' }, el('span', {}, liveBox, ' live refresh')),
        el('span', { class: 'muted' }, `page ${cursors.length + 1}, ${page.jobs.length} jobs`)));
  };
  const shown = keepFresh(draw, 0);
  const refresh = () => shown();
  const generation = frame.generation;
  frame.timer = setInterval(() => {
    // Not while someone types into a form: redrawing would drop it.
    const typing = frame.view().contains(document.activeElement)
      && document.activeElement.matches('input:not([type=checkbox]), textarea, select');
    if (live && !typing && generation === frame.generation) refresh();
  }, 3000);
}

function isFinal(job) {
  return ['completed', 'failed', 'cancelled'].includes(job.status);
}

function cancelButton(job, after) {
  if (isFinal(job) || job.cancelRequested) return null;
  const button = el('button', { type: 'button', class: 'danger', 'data-cancel': job.id }, 'Cancel');
  button.addEventListener('click', async () => {
    if (!confirm(`Cancel job ${job.id}?`)) return;
    button.disabled = true;
    try {
      await post(`/v1/jobs/${encodeURIComponent(job.id)}/cancel`);
      after();
    } catch (e) {
      button.disabled = false;
      showError(`Cancel failed: ${e.message}`);
    }
  });
  return button;
}

// ---- One job ------------------------------------------------------------------

function job(id) {
  const refresh = keepFresh(async () => {
    const { job } = await get(`/v1/jobs/${encodeURIComponent(id)}`);
    const payload = job.payload;
    const env = Object.keys(payload.env || {});
    return el('div', { 'data-ready': 'job' },
      el('h1', {}, 'Job ', el('span', { class: 'mono' }, job.id)),
      el('p', {}, statusBadge(job.status), ' ', cancelButton(job, () => refresh())),
      fields([
        ['Attempts', `${job.attempts} of ${job.maxAttempts}`],
        ['Priority', job.priority],
        ['Requires', (job.requirement.requiredCapabilities || []).join(', ') || 'nothing'],
        ['Host', job.assignedHostId],
        ['Error', job.error],
      ]),
      el('h2', {}, 'Payload'),
      fields([
        ['Kind', payload.kind],
        ['Command line', el('span', { class: 'mono' }, commandLine(payload))],
        ['Working directory', payload.cwd],
        ['Automaton directory', payload.automatonDir],
        ['Timeout', payload.timeoutMs ? `${payload.timeoutMs} ms` : ''],
        ['Environment', env.length
          ? el('span', { class: 'mono' }, env.map((name) => `${name}=${MASK}`).join('  '))
          : ''],
      ]),
      el('h2', {}, 'Timeline'),
      timeline(job),
      el('h2', {}, 'Output'),
      job.result
        ? [el('p', { class: 'muted' }, `Exit code ${job.result.exitCode ?? 'none'}, ran ${job.result.durationMs} ms.`),
          el('h3', {}, 'stdout'), el('pre', { id: 'stdout' }, job.result.stdout),
          el('h3', {}, 'stderr'), el('pre', { id: 'stderr' }, job.result.stderr)]
        : el('p', { class: 'muted' }, 'No output yet.'));
  }, 3000);
}

// What the job's record tells of its life. Earlier attempts show as a
// count: the Log page has every event.
function timeline(job) {
  const steps = [[job.createdAt, 'Enqueued']];
  if (job.attempts > 0) {
    steps.push([null, `Claimed ${job.attempts} time${job.attempts === 1 ? '' : 's'} (lease epoch = attempt)`]);
  }
  if (job.status === 'leased') {
    steps.push([null, `Leased to ${job.assignedHostId} at epoch ${job.leaseEpoch}, lease runs to ${time(job.leaseExpiresAt)}`]);
  }
  if (job.cancelRequested) steps.push([null, 'Cancel requested']);
  if (job.result) {
    steps.push([job.result.finishedAt, `Reported by ${job.assignedHostId || 'its host'}: exit code ${job.result.exitCode ?? 'none'} after ${job.result.durationMs} ms`]);
  }
  if (isFinal(job)) steps.push([job.updatedAt, `Ended ${job.status}`]);
  else steps.push([job.updatedAt, `Last changed (${job.status})`]);
  return el('ol', { class: 'timeline' }, steps.map(([at, what]) =>
    el('li', {}, at ? el('span', { class: 'muted' }, `${time(at)} `) : '', what)));
}

// ---- Hosts ------------------------------------------------------------------

function hosts() {
  const refresh = keepFresh(async () => {
    const { hosts } = await get('/v1/hosts');
    return el('div', { 'data-ready': 'hosts' },
      el('h1', {}, 'Hosts'),
      table(['Host', 'Name', 'State', 'Key', 'Capabilities', 'Slots in use', 'Last seen', 'Registered', 'Sandbox', ''],
        hosts.map((host) => el('tr', {},
          el('td', {}, el('a', { href: `#/jobs?status=leased&host=${encodeURIComponent(host.id)}`, class: 'mono' }, host.id)),
          el('td', {}, host.name),
          el('td', {}, host.access),
          el('td', { class: 'mono' }, host.publicKey ? `${host.publicKey.slice(0, 12)}…` : 'none (token)'),
          el('td', {}, host.capabilities.join(', ')),
          el('td', {}, `${host.activeLeases} / ${host.maxParallel}`),
          el('td', {}, ago(host.lastSeenAt)),
          el('td', {}, time(host.registeredAt)),
          el('td', {}, host.sandbox || 'not reported'),
          el('td', {}, hostAction(host, 'approve', host.access === 'pending', () => refresh()),
            hostAction(host, 'revoke', host.access !== 'revoked', () => refresh()))))));
  }, 5000);
}

// An admin's action on a host: approve a pending one, revoke one.
function hostAction(host, action, offered, after) {
  if (!offered) return null;
  const button = el('button', { type: 'button', class: action === 'revoke' ? 'danger' : '', [`data-${action}`]: host.id },
    action === 'revoke' ? 'Revoke' : 'Approve');
  button.addEventListener('click', async () => {
    if (!confirm(`${action === 'revoke' ? 'Revoke' : 'Approve'} host ${host.id}?`)) return;
    button.disabled = true;
    try {
      await post(`/v1/hosts/${encodeURIComponent(host.id)}/${action}`);
      after();
    } catch (e) {
      button.disabled = false;
      showError(`${action} failed: ${e.message}`);
    }
  });
  return button;
}

// ---- Log ----------------------------------------------------------------------

function log() {
  keepFresh(async () => {
    const [head, digest] = await Promise.all([get('/v1/log/head'), get('/v1/state/digest')]);
    const from = Math.max(1, head.seq - EVENTS_SHOWN + 1);
    let events;
    try {
      const { records } = await get(`/v1/events${query({ from, limit: EVENTS_SHOWN, format: 'json' })}`);
      events = table(['Seq', 'Time', 'Event', 'Details', 'Hash'], records.reverse().map((record) => {
        const [kind, detail] = Object.entries(masked(record.event) || { unreadable: null })[0];
        const text = JSON.stringify(detail);
        return el('tr', {},
          el('td', {}, record.seq),
          el('td', {}, time(record.at)),
          el('td', {}, kind),
          el('td', { class: 'wrap mono' }, text.length > 300 ? `${text.slice(0, 300)}…` : text),
          el('td', { class: 'mono' }, String(record.hash).slice(0, 12)));
      }));
    } catch (e) {
      if (e.status === 401) throw e;
      events = el('p', { class: 'error' }, `The latest events cannot be shown: ${e.message}`);
    }
    return el('div', { 'data-ready': 'log' },
      el('h1', {}, 'Log'),
      fields([
        ['Head', `seq ${head.seq}`],
        ['Head hash', el('span', { class: 'mono' }, head.hash)],
        ['Cluster', el('span', { class: 'mono' }, head.clusterId)],
        ['State digest', el('span', { class: 'mono' }, `${digest.digest} (at seq ${digest.seq})`)],
      ]),
      el('h2', {}, `Latest ${EVENTS_SHOWN} events`),
      events);
  }, 5000);
}

// ---- Start ------------------------------------------------------------------

document.getElementById('login-form').addEventListener('submit', signIn);
document.getElementById('sign-out').addEventListener('click', () => showLogin(''));
window.addEventListener('hashchange', route);
if (credential.get()) signedIn(true);
route();
