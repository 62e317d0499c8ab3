// Times as kubectl prints them: an age in its short form ("4s", "3m12s", "5h", "3d"; the rules of
// k8s.io/apimachinery's duration.HumanDuration, so the plugin's columns read like `kubectl get`),
// and a time relative to now ("4s ago", "in 3h59m") for expiries, which lie ahead.

/** kubectl's short age of a duration: more precision for short ones, less for long ones. */
export function humanDuration(milliseconds: number): string {
  const seconds = Math.floor(milliseconds / 1000);
  if (seconds < -1) return '<invalid>';
  if (seconds < 0) return '0s';
  if (seconds < 60 * 2) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 10) return seconds % 60 === 0 ? `${minutes}m` : `${minutes}m${seconds % 60}s`;
  if (minutes < 60 * 3) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 8) return minutes % 60 === 0 ? `${hours}h` : `${hours}h${minutes % 60}m`;
  if (hours < 48) return `${hours}h`;
  if (hours < 24 * 8)
    return hours % 24 === 0 ? `${Math.floor(hours / 24)}d` : `${Math.floor(hours / 24)}d${hours % 24}h`;
  const days = Math.floor(hours / 24);
  if (hours < 24 * 365 * 2) return `${days}d`;
  if (hours < 24 * 365 * 8)
    return days % 365 === 0 ? `${Math.floor(days / 365)}y` : `${Math.floor(days / 365)}y${days % 365}d`;
  return `${Math.floor(days / 365)}y`;
}

/** The age of a time (as `kubectl get` shows AGE), or "<unknown>" without one. */
export function age(time: string | Date | undefined, now: Date): string {
  if (time === undefined || time === '') return '<unknown>';
  return humanDuration(now.getTime() - new Date(time).getTime());
}

/** "4s ago" for a time past, "in 3h59m" for one ahead. */
export function relativeTime(time: string | Date, now: Date): string {
  const delta = new Date(time).getTime() - now.getTime();
  return delta > 0 ? `in ${humanDuration(delta)}` : `${humanDuration(-delta)} ago`;
}
