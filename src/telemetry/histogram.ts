/**
 * A Prometheus histogram for the request path. The caller keeps a series per label set (labels
 * are bounded) and an observation is a bucket search and three additions on it: no label
 * object, hashing or validation per call, which prom-client's Histogram.observe does (about
 * 4 µs each, two per proxied request).
 *
 * prom-client's registry renders it as it renders its own Histogram (same metric shape: the
 * cumulative `_bucket` series with `le` first, `+Inf`, `_sum`, `_count`, series in the order
 * they were first observed), so `/metrics` is byte for byte what prom-client would write for
 * the same observations in both the Prometheus and the OpenMetrics format
 * (test/telemetry/histogram.test.ts holds it to that).
 */
import type { MetricObjectWithValues, MetricValueWithName, Registry } from 'prom-client';

/** One label set's counts. */
export class HistogramSeries {
  readonly labels: Readonly<Record<string, string>>;
  readonly #bounds: readonly number[];
  /** Observations per bucket (not cumulative): at i, those ≤ bounds[i] and > bounds[i - 1]. */
  readonly #counts: Float64Array;
  #sum = 0;
  #count = 0;

  constructor(labels: Readonly<Record<string, string>>, bounds: readonly number[]) {
    this.labels = labels;
    this.#bounds = bounds;
    this.#counts = new Float64Array(bounds.length);
  }

  /** Counts a value (a non-finite one is ignored: a duration always is finite). */
  observe(value: number): void {
    if (!Number.isFinite(value)) return;
    const bounds = this.#bounds;
    for (let i = 0; i < bounds.length; i++) {
      if (value <= bounds[i]!) {
        this.#counts[i]! += 1;
        break;
      }
    }
    this.#sum += value;
    this.#count += 1;
  }

  get count(): number {
    return this.#count;
  }

  reset(): void {
    this.#counts.fill(0);
    this.#sum = 0;
    this.#count = 0;
  }

  /**
   * The exposition values as prom-client's Histogram makes them (same fields in the same order:
   * `le` as the value's own label, the series' labels shared).
   */
  values(name: string): ExportedValue[] {
    const bucket = `${name}_bucket`;
    const shared = this.labels as Record<string, string>;
    const out: ExportedValue[] = [];
    let cumulative = 0;
    for (let i = 0; i < this.#bounds.length; i++) {
      cumulative += this.#counts[i]!;
      out.push(value({ le: this.#bounds[i]! }, shared, cumulative, bucket, null));
    }
    out.push(
      value({ le: '+Inf' }, shared, this.#count, bucket, null),
      value({}, shared, this.#sum, `${name}_sum`, undefined),
      value({}, shared, this.#count, `${name}_count`, undefined),
    );
    return out;
  }
}

/** One exposition value with the series' labels apart, as prom-client's registry renders it. */
interface ExportedValue {
  labels: Record<string, string | number>;
  sharedLabels: Record<string, string>;
  value: number;
  metricName: string;
  exemplar: null | undefined;
}

function value(
  labels: Record<string, string | number>,
  sharedLabels: Record<string, string>,
  count: number,
  metricName: string,
  exemplar: null | undefined,
): ExportedValue {
  return { labels, sharedLabels, value: count, metricName, exemplar };
}

/** Options of a Histogram, as prom-client's. */
export interface HistogramOptions {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  /** Upper bounds, ascending. */
  readonly buckets: readonly number[];
  readonly registers: readonly Registry[];
}

/** A histogram registered with prom-client's registries; observations go through its series. */
export class Histogram {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram' as const;
  readonly aggregator = 'sum' as const;
  readonly labelNames: readonly string[];
  readonly upperBounds: readonly number[];
  readonly #series: HistogramSeries[] = [];

  constructor(options: HistogramOptions) {
    for (const label of options.labelNames)
      if (label === 'le') throw new Error(`${options.name}: le is a reserved label name`);
    for (let i = 1; i < options.buckets.length; i++)
      if (!(options.buckets[i]! > options.buckets[i - 1]!))
        throw new Error(`${options.name}: bucket bounds must be ascending (${options.buckets.join(', ')})`);
    this.name = options.name;
    this.help = options.help;
    this.labelNames = [...options.labelNames];
    this.upperBounds = [...options.buckets];
    // The registry's interface is structural (get, reset, name, type); this class is not a prom-client Metric.
    for (const registry of options.registers) registry.registerMetric(this as never);
  }

  /** A new series for these labels (the caller keeps it: asking twice makes two series). */
  series(labels: Readonly<Record<string, string>>): HistogramSeries {
    const series = new HistogramSeries(labels, this.upperBounds);
    this.#series.push(series);
    return series;
  }

  /** What prom-client's registry renders as text (series that have been observed). */
  async getForPromString(): Promise<MetricObjectWithValues<MetricValueWithName<string>>> {
    return this.#metric(this.#values());
  }

  /** The same values with each one's labels in one object, as registry.getMetricsAsJSON() gives them. */
  async get(): Promise<MetricObjectWithValues<MetricValueWithName<string>>> {
    return this.#metric(
      this.#values().map(({ labels, sharedLabels, ...rest }) => ({
        ...rest,
        labels: Object.assign(labels, sharedLabels),
      })),
    );
  }

  /** The values of the series that have been observed. */
  #values(): ExportedValue[] {
    const values: ExportedValue[] = [];
    for (const series of this.#series) if (series.count > 0) values.push(...series.values(this.name));
    return values;
  }

  #metric(values: object[]): MetricObjectWithValues<MetricValueWithName<string>> {
    return {
      name: this.name,
      help: this.help,
      type: 'histogram',
      values,
      aggregator: this.aggregator,
    } as unknown as MetricObjectWithValues<MetricValueWithName<string>>;
  }

  /** Zeroes every series (they leave the exposition until observed again). */
  reset(): void {
    for (const series of this.#series) series.reset();
  }
}
