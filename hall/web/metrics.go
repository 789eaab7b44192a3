package web

import (
	"context"
	"log/slog"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/hallrate/hallrate/hall/store"
)

// Counter is a counter read when metrics are scraped.
type Counter struct {
	Name, Help string
	Value      func() int64
}

// NewRegistry returns the collector's metrics registry: the given counters,
// the queue gauges read from the store at each scrape, and the Go and
// process collectors.
func NewRegistry(st BacklogStore, clock clockwork.Clock, log *slog.Logger, counters []Counter) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, c := range counters {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "hallrate_collector", Name: c.Name, Help: c.Help,
		}, func() float64 { return float64(c.Value()) }))
	}
	reg.MustRegister(&backlogCollector{st: st, clock: clock, log: log})
	return reg
}

// backlogCollector reads the evaluations queue at each scrape.
type backlogCollector struct {
	st    BacklogStore
	clock clockwork.Clock
	log   *slog.Logger
}

var (
	evalDesc  = prometheus.NewDesc("hallrate_collector_evaluations", "Evaluations by delivery state.", []string{"state"}, nil)
	undelDesc = prometheus.NewDesc("hallrate_collector_evaluations_undelivered",
		"Evaluations not yet handed to the e-supervision system (pending, or table rows not taken).", nil, nil)
	ageDesc = prometheus.NewDesc("hallrate_collector_evaluations_oldest_undelivered_age_seconds",
		"Age of the oldest undelivered evaluation; 0 when none.", nil, nil)
	upDesc = prometheus.NewDesc("hallrate_collector_store_up", "Whether the store answered the scrape's queries.", nil, nil)
)

func (b *backlogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- evalDesc
	ch <- undelDesc
	ch <- ageDesc
	ch <- upDesc
}

func (b *backlogCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	bl, err := b.st.Backlog(ctx)
	if err != nil {
		b.log.Warn("metrics: read backlog", "err", err)
		ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, 1)
	for _, st := range []string{store.Pending, store.Delivered, store.Rejected, store.InTable, store.Held} {
		ch <- prometheus.MustNewConstMetric(evalDesc, prometheus.GaugeValue, float64(bl.States[st]), st)
	}
	ch <- prometheus.MustNewConstMetric(undelDesc, prometheus.GaugeValue, float64(bl.Undelivered))
	ch <- prometheus.MustNewConstMetric(ageDesc, prometheus.GaugeValue, Age(bl, b.clock.Now()))
}
