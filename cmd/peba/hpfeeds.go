package main

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/config"
	"github.com/peba-go/peba/hpfeeds"
	"github.com/peba-go/peba/ingest"
	"github.com/prometheus/client_golang/prometheus"
)

// newHpfeeds builds the hpfeeds subscriber: every message is normalized into
// events that take the same path as EWS posts (enrichment, de-duplication,
// group commit, live feed). hpfeeds has no acknowledgement, so a message the
// pipeline rejects (queue full) is lost; it is counted.
func newHpfeeds(cfg *config.Config, pipe *ingest.Pipeline, log *slog.Logger, reg prometheus.Registerer) *hpfeeds.Client {
	domain := peba.DomainCommunity
	if cfg.HpfeedsDomain == "private" {
		domain = peba.DomainPrivate
	}
	invalid := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "peba_hpfeeds_invalid_messages_total", Help: "hpfeeds messages that could not be normalized into events.",
	})
	c := &hpfeeds.Client{
		Brokers: []hpfeeds.Broker{{
			Addr:  net.JoinHostPort(cfg.HpfeedsHost, strconv.Itoa(cfg.HpfeedsPort)),
			Ident: cfg.HpfeedsIdent, Secret: cfg.HpfeedsSecret, Channels: cfg.HpfeedsChannels, TLS: cfg.HpfeedsTLS,
		}},
		Handler: func(ctx context.Context, m hpfeeds.Message) error {
			evs, err := hpfeeds.Normalize(m.Channel, m.Ident, m.Payload, time.Now())
			if err != nil {
				invalid.Inc()
				return err
			}
			_, err = pipe.Submit(ctx, domain, evs)
			return err
		},
		Logger: log,
	}
	state := func(pick func(hpfeeds.BrokerState) float64) func() float64 {
		return func() float64 {
			var sum float64
			for _, s := range c.State() {
				sum += pick(s)
			}
			return sum
		}
	}
	reg.MustRegister(invalid,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "peba_hpfeeds_connected_brokers", Help: "hpfeeds brokers with a live subscription."},
			state(func(s hpfeeds.BrokerState) float64 {
				if s.Status == hpfeeds.StatusConnected {
					return 1
				}
				return 0
			})),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "peba_hpfeeds_messages_total", Help: "hpfeeds messages received."},
			state(func(s hpfeeds.BrokerState) float64 { return float64(s.Messages) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "peba_hpfeeds_lost_messages_total", Help: "hpfeeds messages rejected by normalization or ingest (lost: hpfeeds has no acknowledgement)."},
			state(func(s hpfeeds.BrokerState) float64 { return float64(s.HandlerErrors) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "peba_hpfeeds_connection_errors_total", Help: "Failed hpfeeds connection attempts, dropped connections and broker errors."},
			state(func(s hpfeeds.BrokerState) float64 { return float64(s.Errors) })),
	)
	return c
}
