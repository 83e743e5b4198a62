import { memo, useMemo, useState } from 'react'
import type { Ad, PageModel } from '../api'
import { LEVEL_LABEL, LEVELS, money } from '../format'

type Key = 'name' | 'level' | 'score' | 'days' | 'spend'
const COLUMNS: { key: Key; label: string; numeric?: boolean }[] = [
  { key: 'name', label: 'Ad' },
  { key: 'level', label: 'Level' },
  { key: 'score', label: 'Score', numeric: true },
  { key: 'days', label: 'Days to critical', numeric: true },
  { key: 'spend', label: 'Spend at stake', numeric: true },
]

function value(ad: Ad, key: Key): number | string {
  switch (key) {
    case 'name':
      return ad.ad_name.toLowerCase()
    case 'level':
      return LEVELS.indexOf(ad.level)
    case 'score':
      return ad.score ?? -1
    case 'days':
      return ad.days_to_critical ?? Number.MAX_SAFE_INTEGER
    case 'spend':
      return Number(ad.spend)
  }
}

/** Every ad: level badge, score, top reasons in words with numbers, days to critical, spend. Sortable. */
export function AdTable({ model, selected, onSelect }: { model: PageModel; selected: string | null; onSelect: (id: string) => void }) {
  const [sort, setSort] = useState<{ key: Key; descending: boolean }>({ key: 'score', descending: true })
  const ads = useMemo(() => {
    const sorted = [...model.ads].sort((a, b) => {
      const x = value(a, sort.key)
      const y = value(b, sort.key)
      return x < y ? -1 : x > y ? 1 : a.ad_id < b.ad_id ? -1 : 1
    })
    return sort.descending ? sorted.reverse() : sorted
  }, [model.ads, sort])
  const toggle = (key: Key) =>
    setSort((s) => ({ key, descending: s.key === key ? !s.descending : key !== 'name' && key !== 'days' }))
  return (
    <section className="ads" aria-labelledby="ads-title" data-widget="table" data-version={model.version}>
      <h2 id="ads-title">Ads</h2>
      <table>
        <caption className="visually-hidden">Ads of {model.account.name} by fatigue; column buttons sort</caption>
        <thead>
          <tr>
            {COLUMNS.map((c) => (
              <th
                key={c.key}
                scope="col"
                className={`col-${c.key}${c.numeric ? ' num' : ''}`}
                aria-sort={sort.key === c.key ? (sort.descending ? 'descending' : 'ascending') : 'none'}
              >
                <button type="button" onClick={() => toggle(c.key)}>
                  {c.label}
                  <span aria-hidden="true">{sort.key === c.key ? (sort.descending ? ' ▼' : ' ▲') : ''}</span>
                </button>
              </th>
            ))}
            <th scope="col" className="col-reasons">Why</th>
          </tr>
        </thead>
        <tbody>
          {ads.map((ad) => (
            <Row key={ad.ad_id} ad={ad} currency={model.account.currency} selected={selected === ad.ad_id} onSelect={onSelect} />
          ))}
        </tbody>
      </table>
    </section>
  )
}

/** One ad; re-rendered only when its entry changed (a live change replaces only the ads it touched). */
const Row = memo(function Row({ ad, currency, selected, onSelect }: { ad: Ad; currency: string; selected: boolean; onSelect: (id: string) => void }) {
  return (
    <tr data-ad-id={ad.ad_id} aria-selected={selected}>
      <th scope="row" className="col-name">
        <button type="button" className="ad-name" onClick={() => onSelect(ad.ad_id)} aria-label={`Show trends of ${ad.ad_name}`}>
          {ad.ad_name}
        </button>
        <span className="muted small">{ad.campaign_name} · {ad.adset_name.replace(`${ad.campaign_name} / `, '')}</span>
      </th>
      <td className="col-level">
        <span className={`badge level-${ad.level}`}>{LEVEL_LABEL[ad.level]}</span>
      </td>
      <td className="col-score num" data-testid="score">{ad.score === null ? '–' : ad.score.toFixed(1)}</td>
      <td className="col-days num">{ad.days_to_critical === null ? '–' : ad.days_to_critical}</td>
      <td className="col-spend num" data-testid="spend">{money(ad.spend, currency)}</td>
      <td className="col-reasons">
        <ul className="reasons">
          {ad.reasons.slice(0, 3).map((r) => (
            <li key={r}>{r}</li>
          ))}
        </ul>
      </td>
    </tr>
  )
})
