import type { PageModel } from '../api'
import { LEVEL_LABEL, LEVELS, money } from '../format'

/** Ads per level and the spend on warning and critical ads. */
export function AccountSummary({ model }: { model: PageModel }) {
  const { summary, account } = model
  return (
    <section className="summary" aria-labelledby="summary-title" data-widget="summary" data-version={model.version}>
      <h2 id="summary-title">Account summary</h2>
      <dl className="summary-grid">
        <div>
          <dt>Ads</dt>
          <dd data-testid="ads-count">{summary.ads}</dd>
        </div>
        {LEVELS.map((level) => (
          <div key={level} className={`level-${level}`}>
            <dt>{LEVEL_LABEL[level]}</dt>
            <dd data-testid={`count-${level}`}>{summary.per_level[level] ?? 0}</dd>
          </div>
        ))}
        <div className="at-risk">
          <dt>Spend on warning and critical ads</dt>
          <dd data-testid="spend-at-risk">
            {money(summary.spend_at_risk, account.currency)} <span className="muted">of {money(summary.spend, account.currency)}</span>
          </dd>
        </div>
      </dl>
    </section>
  )
}
