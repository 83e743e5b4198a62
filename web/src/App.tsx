import { useEffect, useState } from 'react'
import { api, Account, Problem, Session } from './api'
import { usePageData } from './usePageData'
import { AccountSummary } from './widgets/AccountSummary'
import { AdTable } from './widgets/AdTable'
import { TrendCharts } from './widgets/TrendCharts'
import { FreshnessBanner, LiveIndicator } from './widgets/StatusBar'

interface View {
  act: string
  since: string
  until: string
}

function isoDay(d: Date): string {
  return d.toISOString().slice(0, 10)
}

function viewFromUrl(): Partial<View> {
  const q = new URLSearchParams(window.location.search)
  const v: Partial<View> = {}
  if (q.get('account')) v.act = q.get('account')!
  if (q.get('since')) v.since = q.get('since')!
  if (q.get('until')) v.until = q.get('until')!
  return v
}

function defaultRange(): { since: string; until: string } {
  const until = new Date(Date.now() - 86_400_000)
  const since = new Date(until.getTime() - 27 * 86_400_000)
  return { since: isoDay(since), until: isoDay(until) }
}

function ProblemNotice({ problem, act }: { problem: Problem; act?: string }) {
  let title = 'Something went wrong'
  if (problem.status === 401) title = 'You are not signed in'
  else if (problem.status === 403) title = act ? `You do not have access to ${act}` : 'Access denied'
  else if (problem.status === 404) title = 'Not found'
  else if (problem.status === 503 || problem.status === 0) title = 'The insights service is unreachable'
  return (
    <div className="notice" role="alert" data-testid="problem">
      <h2>{title}</h2>
      <p>{problem.detail}</p>
    </div>
  )
}

/** The last 28 days (or fewer) of what the platform holds: since..until, ISO dates. */
function lastHeld(held: { since: string; until: string }): { since: string; until: string } {
  const until = new Date(`${held.until}T00:00:00Z`)
  const start = new Date(until.getTime() - 27 * 86_400_000)
  const since = isoDay(start) < held.since ? held.since : isoDay(start)
  return { since, until: held.until }
}

function Dashboard({ view, session, onGo }: { view: View; session: Session | null; onGo: (v: View) => void }) {
  const data = usePageData(view.act, view.since, view.until)
  const [selected, setSelected] = useState<string | null>(null)
  const [refreshing, setRefreshing] = useState('')
  const { model } = data
  if (data.error) return <ProblemNotice problem={data.error} act={view.act} />
  if (!model) return <p className="muted" role="status">Loading {view.act} …</p>
  const ad = model.ads.find((a) => a.ad_id === selected) ?? model.ads[0]
  const held = model.stored_days ? lastHeld(model.stored_days) : null // the offer of an empty range
  const refresh = () => {
    if (!session) return
    setRefreshing('refreshing …')
    api
      .refresh(view.act, view.since, view.until, session.csrf_token)
      .then((r) => setRefreshing(`refreshed: ${r.rows_changed} row(s) changed`))
      .catch((e: Problem) => setRefreshing(`refresh failed: ${e.detail}`))
  }
  return (
    <div className="dashboard" data-applied-versions={data.applied.join(' ')} data-testid="dashboard">
      <div className="topline">
        <LiveIndicator model={model} connection={data.connection} lastChangeAt={data.lastChangeAt} />
        {session?.operator ? (
          <span className="operator">
            <button type="button" onClick={refresh}>Refresh now</button> <span className="muted small">{refreshing}</span>
          </span>
        ) : null}
      </div>
      <FreshnessBanner model={model} connection={data.connection} gatewayDetail={data.gatewayDetail} />
      {model.ads.length === 0 ? (
        <div className="notice" role="status" data-testid="no-data">
          <p>
            No ad of {view.act} has a row in {view.since} … {view.until}.{' '}
            {model.stored_days
              ? `The platform holds its days ${model.stored_days.since} … ${model.stored_days.until}.`
              : 'The platform holds no day of this account yet.'}
          </p>
          {held ? (
            <button type="button" onClick={() => onGo({ act: view.act, ...held })}>
              Show {held.since} … {held.until}
            </button>
          ) : null}
        </div>
      ) : null}
      <AccountSummary model={model} />
      <div className="main">
        <AdTable model={model} selected={ad?.ad_id ?? null} onSelect={setSelected} />
        <TrendCharts model={model} ad={ad} />
      </div>
    </div>
  )
}

export function App() {
  const [session, setSession] = useState<Session | null>(null)
  const [problem, setProblem] = useState<Problem | null>(null)
  const [accounts, setAccounts] = useState<Account[]>([])
  const [view, setView] = useState<View | null>(null)

  useEffect(() => {
    api
      .session()
      .then(async (s) => {
        setSession(s)
        const list = (await api.accounts()).accounts
        setAccounts(list)
        const wanted = viewFromUrl()
        const act = wanted.act ?? list.find((a) => a.known)?.id ?? list[0]?.id
        if (!act) throw new Problem(404, 'You may not read any ad account yet: ask for access.')
        setView({ act, ...defaultRange(), ...wanted })
      })
      .catch((e: unknown) => setProblem(e instanceof Problem ? e : new Problem(0, String(e))))
  }, [])

  const go = (next: View) => {
    const q = new URLSearchParams({ account: next.act, since: next.since, until: next.until })
    window.history.replaceState(null, '', `?${q}`)
    setView(next)
  }

  return (
    <>
      <header className="header">
        <h1>Ad fatigue</h1>
        {view ? (
          <form
            key={`${view.act}/${view.since}/${view.until}`}
            className="picker"
            onSubmit={(e) => {
              e.preventDefault()
              const f = new FormData(e.currentTarget)
              go({ act: String(f.get('act')), since: String(f.get('since')), until: String(f.get('until')) })
            }}
          >
            <label>
              Account{' '}
              <select name="act" defaultValue={view.act}>
                {accounts.some((a) => a.id === view.act) ? null : <option value={view.act}>{view.act}</option>}
                {accounts.map((a) => (
                  <option key={a.id} value={a.id}>
                    {a.name === a.id ? a.id : `${a.name} (${a.id})`}
                  </option>
                ))}
              </select>
            </label>
            <label>
              From <input type="date" name="since" defaultValue={view.since} required />
            </label>
            <label>
              to <input type="date" name="until" defaultValue={view.until} required />
            </label>
            <button type="submit">Show</button>
          </form>
        ) : null}
        {session ? <span className="muted small user">signed in as {session.user}</span> : null}
      </header>
      <main>
        {problem ? <ProblemNotice problem={problem} /> : null}
        {view ? <Dashboard key={`${view.act}/${view.since}/${view.until}`} view={view} session={session} onGo={go} /> : null}
      </main>
    </>
  )
}
