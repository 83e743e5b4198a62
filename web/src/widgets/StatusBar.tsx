import type { PageModel } from '../api'
import type { Connection } from '../usePageData'
import { time } from '../format'

const STATUS_TEXT = {
  fresh: 'fresh',
  stale_revalidating: 'refreshing',
  stale_upstream_error: 'stale: Meta could not be reached',
  unknown: 'freshness unknown',
}

/** "data from 10:42 Asia/Tokyo · Meta rate limit reached · refreshing", and stale said out loud. */
export function FreshnessBanner({ model, connection, gatewayDetail }: { model: PageModel; connection: Connection; gatewayDetail: string }) {
  const f = model.freshness
  const gatewayDown = connection === 'reconnecting' || connection === 'error'
  const stale = gatewayDown || f.status !== 'fresh'
  const parts = [`data from ${f.as_of_local ?? '–'} ${model.account.timezone}`]
  if (f.reason) parts.push(f.reason)
  parts.push(STATUS_TEXT[f.status] ?? f.status)
  return (
    <div className={`banner ${stale ? 'stale' : 'fresh'}`} role="status" data-widget="freshness" data-version={model.version} data-testid="freshness">
      {gatewayDown ? (
        <strong>Stale: {gatewayDetail || 'the live connection is lost'} · </strong>
      ) : null}
      {parts.join(' · ')}
    </div>
  )
}

/** connected / reconnecting / last change at, and the version the page shows. */
export function LiveIndicator({ model, connection, lastChangeAt }: { model: PageModel; connection: Connection; lastChangeAt: Date | null }) {
  const label = connection === 'live' ? 'connected' : connection === 'connecting' ? 'connecting' : connection === 'error' ? 'disconnected' : 'reconnecting'
  return (
    <div className="live" data-widget="live" data-version={model.version}>
      <span className={`dot ${connection}`} aria-hidden="true" />
      <span data-testid="connection">{label}</span>
      {lastChangeAt ? <span className="muted"> · last change at {time(lastChangeAt)}</span> : null}
      <span className="version" data-testid="version"> · version {model.version}</span>
    </div>
  )
}
