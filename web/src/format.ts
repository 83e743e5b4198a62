import type { Level } from './api'

export const LEVEL_LABEL: Record<Level, string> = {
  critical: 'Critical',
  warning: 'Warning',
  caution: 'Caution',
  healthy: 'Healthy',
  insufficient_data: 'Not enough data',
}

export const LEVELS: Level[] = ['critical', 'warning', 'caution', 'healthy', 'insufficient_data']

export function money(value: string | number, currency: string): string {
  const n = typeof value === 'number' ? value : Number(value)
  return `${currency} ${n.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`
}

export function time(d: Date): string {
  return d.toLocaleTimeString('en-GB', { hour: '2-digit', minute: '2-digit', second: '2-digit' })
}
