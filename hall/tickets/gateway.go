// Package tickets brings a hall's queue system to the terminals: the
// collector takes the queue system's ticket messages at its HTTP API or
// polls them from the queue system's database, checks each with the rules
// the agent applies, and publishes it retained on the counter's ticket
// topic, answering only once the broker has acknowledged it.
package tickets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/hallrate/hallrate/record"
	"github.com/jonboulle/clockwork"
)

// Ways a ticket reaches the collector, as [Gateway.Publish] is told and
// the dashboard shows them. A ticket the collector only heard on the
// broker came by MQTT.
const (
	ViaHTTP = "http"
	ViaSQL  = "sql"
	ViaMQTT = "mqtt"
)

// Publisher publishes a message with QoS 1 and returns once the broker
// acknowledged it (PUBACK) or ctx ended.
type Publisher interface {
	Publish(ctx context.Context, topic string, payload []byte, retained bool) error
}

// Noter learns which door a ticket came in by before the broker hands it
// back to the collector's own subscription (the live hub).
type Noter interface {
	Sent(hall, counter string, t record.Ticket, via string)
}

// Config configures a [Gateway].
type Config struct {
	Prefix, Hall string
	Publisher    Publisher
	// Ready reports whether the broker link is up; while it is not, a
	// publish is refused at once rather than queued.
	Ready func() bool
	// Timeout bounds the wait for the broker's acknowledgement (default
	// 10s).
	Timeout time.Duration
	Noter   Noter
	Clock   clockwork.Clock
	Logger  *slog.Logger
}

// FieldError is a ticket message or counter that breaks the rules; Field
// names the field at fault ("body" for the message as a whole).
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Err.Error() }

func (e *FieldError) Unwrap() error { return e.Err }

// ErrUnavailable is a ticket the broker did not acknowledge: it is away,
// or did not answer in time. The caller sends the counter's current ticket
// again later.
var ErrUnavailable = errors.New("broker unavailable")

// Gateway publishes ticket messages for the counters of one hall.
type Gateway struct {
	cfg Config
	log *slog.Logger
}

// NewGateway returns a gateway.
func NewGateway(cfg Config) *Gateway {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = clockwork.NewRealClock()
	}
	if cfg.Ready == nil {
		cfg.Ready = func() bool { return true }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Gateway{cfg: cfg, log: cfg.Logger}
}

// Check decodes a ticket message for counter with the agent's rules.
func Check(counter string, body []byte) (record.Ticket, error) {
	if !record.ValidID(counter) {
		return record.Ticket{}, &FieldError{"counter", fmt.Errorf("counter: %q is not of [A-Za-z0-9._-]{1,64}", counter)}
	}
	if len(body) == 0 {
		return record.Ticket{}, &FieldError{"body", errors.New("body: empty; DELETE clears the counter")}
	}
	t, err := record.DecodeTicket(body)
	if err != nil {
		return record.Ticket{}, &FieldError{fieldOf(err), err}
	}
	return t, nil
}

// fieldOf names the field a ticket decoding error is about: the decoder
// says "ticket: FIELD: problem", or gives a [record.RuleError].
func fieldOf(err error) string {
	var re *record.RuleError
	if errors.As(err, &re) {
		return re.Field
	}
	msg := strings.TrimPrefix(err.Error(), "ticket: ")
	if f, _, ok := strings.Cut(msg, ": "); ok {
		switch f {
		case "v", "ticket", "state", "staff", "item", "projectNo", "at":
			return f
		}
	}
	return "body"
}

// Publish checks body and publishes it, retained, on counter's ticket
// topic. It returns a [*FieldError] for a message the agent would refuse
// and an error wrapping [ErrUnavailable] when the broker did not
// acknowledge it.
func (g *Gateway) Publish(ctx context.Context, counter string, body []byte, via string) (record.Ticket, error) {
	t, err := Check(counter, body)
	if err != nil {
		return t, err
	}
	return t, g.publish(ctx, counter, t, body, via)
}

// Clear publishes an idle message on counter's ticket topic: no ticket.
func (g *Gateway) Clear(ctx context.Context, counter, via string) error {
	if !record.ValidID(counter) {
		return &FieldError{"counter", fmt.Errorf("counter: %q is not of [A-Za-z0-9._-]{1,64}", counter)}
	}
	t := record.Ticket{V: record.Version, State: record.Idle, At: g.cfg.Clock.Now().Format(time.RFC3339)}
	body, err := json.Marshal(struct {
		V     int                `json:"v"`
		State record.TicketState `json:"state"`
		At    string             `json:"at"`
	}{t.V, t.State, t.At})
	if err != nil {
		return fmt.Errorf("tickets: encode idle: %w", err)
	}
	return g.publish(ctx, counter, t, body, via)
}

func (g *Gateway) publish(ctx context.Context, counter string, t record.Ticket, body []byte, via string) error {
	topic := g.cfg.Prefix + "/" + g.cfg.Hall + "/" + counter + "/ticket"
	if !g.cfg.Ready() {
		return fmt.Errorf("tickets: publish %s: %w: not connected to the broker", topic, ErrUnavailable)
	}
	if g.cfg.Noter != nil {
		g.cfg.Noter.Sent(g.cfg.Hall, counter, t, via)
	}
	pctx, cancel := context.WithTimeout(ctx, g.cfg.Timeout)
	defer cancel()
	if err := g.cfg.Publisher.Publish(pctx, topic, body, true); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("tickets: publish %s: %w", topic, ctx.Err())
		}
		return fmt.Errorf("tickets: publish %s: %w: %v", topic, ErrUnavailable, err)
	}
	g.log.Info("ticket published", "counter", counter, "ticket", t.Ticket, "state", t.State, "via", via)
	return nil
}
