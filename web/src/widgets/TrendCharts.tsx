import { memo } from 'react'
import type { Ad, PageModel } from '../api'

const W = 320
const H = 96
const PAD = 4
const NONE: (number | null)[] = []

const Chart = memo(function Chart({ title, values, unit }: { title: string; values: (number | null)[]; unit: string }) {
  const known = values.filter((v): v is number => v !== null)
  if (known.length < 2) {
    return (
      <figure className="chart">
        <figcaption>{title}</figcaption>
        <p className="muted small">not available for this ad</p>
      </figure>
    )
  }
  const lo = Math.min(...known)
  const hi = Math.max(...known)
  const span = hi - lo || 1
  const step = (W - 2 * PAD) / Math.max(values.length - 1, 1)
  let d = ''
  let pen = false
  values.forEach((v, i) => {
    if (v === null) {
      pen = false
      return
    }
    const x = PAD + i * step
    const y = H - PAD - ((v - lo) / span) * (H - 2 * PAD)
    d += `${pen ? 'L' : 'M'}${x.toFixed(1)},${y.toFixed(1)}`
    pen = true
  })
  const last = known[known.length - 1]
  return (
    <figure className="chart">
      <figcaption>
        {title} <span className="muted small">latest {last.toFixed(2)}{unit} · range {lo.toFixed(2)}–{hi.toFixed(2)}{unit}</span>
      </figcaption>
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={`${title}, ${known.length} days, from ${known[0].toFixed(2)}${unit} to ${last.toFixed(2)}${unit}`}>
        <path d={d} fill="none" stroke="currentColor" strokeWidth="1.5" />
      </svg>
    </figure>
  )
})

/** Daily link CTR, CPM and frequency of one ad (SVG). */
export function TrendCharts({ model, ad }: { model: PageModel; ad: Ad | undefined }) {
  return (
    <section className="trends" aria-labelledby="trends-title" data-widget="trends" data-version={model.version}>
      <h2 id="trends-title">Trends{ad ? `: ${ad.ad_name}` : ''}</h2>
      {ad ? (
        <div className="charts">
          <p className="muted small">
            daily from {ad.series.first_day} · {ad.campaign_name}
          </p>
          <Chart title="Link CTR" values={ad.series.link_ctr_pct} unit=" %" />
          <Chart title={`CPM (${model.account.currency})`} values={ad.series.cpm} unit="" />
          <Chart title="Frequency" values={ad.series.frequency ?? NONE} unit="" />
        </div>
      ) : (
        <p className="muted">No ads delivered in this range.</p>
      )}
    </section>
  )
}
