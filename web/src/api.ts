// Shapes of the BFF's v1 API (services/bff/schemas.py) and the calls the page makes.

export type Level = 'critical' | 'warning' | 'caution' | 'healthy' | 'insufficient_data'

export interface Component {
  name: string
  label: string
  available: boolean
  score: number | null
  weight: number
  before_text: string | null
  after_text: string | null
  text: string
}

export interface Series {
  first_day: string
  impressions: (number | null)[]
  link_ctr_pct: (number | null)[]
  cpm: (number | null)[]
  frequency: (number | null)[] | null
}

export interface Ad {
  ad_id: string
  ad_name: string
  adset_name: string
  campaign_name: string
  level: Level
  score: number | null
  components: Component[]
  reasons: string[]
  days_to_critical: number | null
  forecast_reason: string
  spend: string
  impressions: number
  link_ctr_pct: number | null
  delivery_days: number
  series: Series
}

export interface Freshness {
  status: 'fresh' | 'stale_revalidating' | 'stale_upstream_error' | 'unknown'
  reason: string
  as_of: string | null
  as_of_local: string | null
}

export interface Summary {
  ads: number
  per_level: Record<Level, number>
  spend: string
  spend_at_risk: string
}

export interface PageModel {
  account: { id: string; name: string; currency: string; timezone: string }
  range: { since: string; until: string }
  version: number
  generated_at: string
  freshness: Freshness
  summary: Summary
  ads: Ad[]
  /** only when no ad has a row in the range: the first and last day stored for the account */
  stored_days?: { since: string; until: string } | null
}

export interface Change {
  version: number
  from_version: number
  generated_at: string
  freshness: Freshness
  summary: Summary
  ads: Ad[]
  removed: string[]
  order: string[]
  stored_days?: { since: string; until: string } | null
}

export interface GatewayStatus {
  gateway: 'live' | 'reconnecting' | 'error' | 'closing'
  detail: string
}

export interface Session {
  user: string
  accounts: string[]
  operator: boolean
  csrf_token: string
}

export interface Account {
  id: string
  name: string
  currency: string
  timezone: string
  known: boolean
}

/** An error answer (RFC 9457 problem details). */
export class Problem extends Error {
  constructor(public status: number, public detail: string) {
    super(detail)
  }
}

async function json<T>(response: Response): Promise<T> {
  if (!response.ok) {
    let detail = `${response.status} ${response.statusText}`
    try {
      detail = (await response.json()).detail ?? detail
    } catch {
      /* not a problem document */
    }
    throw new Problem(response.status, detail)
  }
  return (await response.json()) as T
}

export const api = {
  session: () => fetch('/api/v1/session').then((r) => json<Session>(r)),
  accounts: () => fetch('/api/v1/accounts').then((r) => json<{ accounts: Account[] }>(r)),
  model: (act: string, since: string, until: string) =>
    fetch(`/api/v1/accounts/${act}/fatigue?since=${since}&until=${until}`).then((r) => json<PageModel>(r)),
  eventsUrl: (act: string, since: string, until: string, lastVersion: number) =>
    `/api/v1/accounts/${act}/events?since=${since}&until=${until}&last_event_id=${lastVersion}`,
  refresh: (act: string, since: string, until: string, csrf: string) =>
    fetch(`/api/v1/accounts/${act}/refresh?since=${since}&until=${until}&force=true`, {
      method: 'POST',
      headers: { 'X-CSRF-Token': csrf },
    }).then((r) => json<{ version: number; rows_changed: number }>(r)),
}
