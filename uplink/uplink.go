// Package uplink carries the outbox to the hall broker over MQTT and brings
// the counter's ticket messages back. It knows the topic contract and the
// acknowledgement rules; it knows nothing of buttons or bbolt.
//
// Each connection is a fresh paho client with a clean session, no automatic
// reconnect and paho's memory store: the outbox, not paho, is the store. A
// record is acknowledged (removed from the outbox) only when its publish
// token completed without error on its own connection. On such a client
// paho completes a QoS 1 token without error only when the PUBACK arrives;
// a lost or closed connection fails every token still pending; and nothing
// is ever resent or resumed by paho, which is where a token can otherwise
// complete without the broker having the message. The tokens of one
// connection report to that connection's drain only. After any failure the
// session is torn down and the next one resends everything still pending
// from the lowest seq, so the broker sees each connection's records in seq
// order.
package uplink

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/hallrate/hallrate/buffer"
	"github.com/hallrate/hallrate/internal/throttle"
	"github.com/hallrate/hallrate/record"
)

// Topics are the counter's topics under the configured prefix.
type Topics struct {
	Rating string
	Status string
	Ticket string
	// Stored is the hall's end-to-end acknowledgement.
	Stored string
}

// CounterTopics returns the contract topics of a counter.
func CounterTopics(prefix, hall, counter string) Topics {
	base := prefix + "/" + hall + "/" + counter + "/"
	return Topics{Rating: base + "rating", Status: base + "status", Ticket: base + "ticket", Stored: base + "stored"}
}

// Config configures an [Uplink].
type Config struct {
	Broker    string
	ClientID  string
	Username  string
	Password  string
	TLS       *tls.Config
	KeepAlive time.Duration
	// WriteTimeout bounds a write to the connection, and a publish waiting
	// for paho's writer (which stops when the connection dies); default 10s.
	WriteTimeout time.Duration
	// Inflight bounds records published and not yet acknowledged.
	Inflight int
	// StatusInterval is how often the retained status is refreshed.
	StatusInterval time.Duration
	Topics         Topics
	// Will is the Last Will payload (the offline status).
	Will []byte
	// Status builds the retained status payload for the given online flag.
	Status func(online bool) []byte
	// OnConnected is told when the broker link goes up or down; it must
	// return promptly.
	OnConnected func(up bool)
	// AcceptTicket, when set, is asked about every ticket message as it
	// arrives (on paho's router: it must return promptly). A message it
	// refuses is dropped there and never displaces an accepted one.
	AcceptTicket func(payload []byte) error
	Logger       *slog.Logger
	// MinBackoff and MaxBackoff bound the wait between connection attempts.
	MinBackoff, MaxBackoff time.Duration
	// Device is the terminal's id: a stored acknowledgement for another
	// device (the one this terminal replaced at the counter) is not ours.
	Device string
	// ConfirmWait is how long the hall may go without storing more of this
	// terminal's records, on acknowledgements that keep coming, before a
	// record the broker acknowledged that long ago is published again;
	// also how long a resent record waits before it is resent. Default 30s.
	ConfirmWait time.Duration
}

// Stats are counters for metrics and status.
type Stats struct {
	Published int64
	Acked     int64
	Connects  int64
	// TicketDropped counts accepted ticket messages replaced by a newer
	// one before they were taken: the newest always wins.
	TicketDropped int64
	// Resent counts records published again because the hall had not
	// stored them; StoredRefused is 1 once the broker refused this
	// terminal the stored topic.
	Resent        int64
	StoredRefused bool
}

// confirmer is an outbox that keeps acknowledged records until the hall
// confirms it stored them.
type confirmer interface {
	Confirm(c buffer.Confirmation, limit int, resend func(buffer.Unconfirmed) bool) ([]buffer.Unconfirmed, error)
}

// Uplink drains an outbox to the broker.
type Uplink struct {
	cfg     Config
	outbox  buffer.Outbox
	log     *slog.Logger
	notify  chan struct{}
	status  chan struct{}
	tickets chan []byte
	stored  chan record.Stored
	up      atomic.Bool
	// storedRefused: the broker refused the stored topic (an ACL made
	// before it): later sessions do not ask for it again.
	storedRefused atomic.Bool

	published, acked, connects, ticketDropped, resent atomic.Int64

	// Of the hall's acknowledgements (the Run goroutine only): the highest
	// seq the last spoke for, since when it has not moved, and when each
	// record was last resent.
	confirmHighest uint64
	confirmSince   time.Time
	resends        map[uint64]resend
}

// New returns an uplink for outbox. Call Run to start it.
func New(cfg Config, outbox buffer.Outbox) *Uplink {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Inflight < 1 {
		cfg.Inflight = 32
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 30 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.StatusInterval <= 0 {
		cfg.StatusInterval = time.Minute
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 250 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 30 * time.Second
	}
	if cfg.OnConnected == nil {
		cfg.OnConnected = func(bool) {}
	}
	if cfg.ConfirmWait <= 0 {
		cfg.ConfirmWait = 30 * time.Second
	}
	return &Uplink{
		cfg:     cfg,
		outbox:  outbox,
		log:     cfg.Logger,
		notify:  make(chan struct{}, 1),
		status:  make(chan struct{}, 1),
		tickets: make(chan []byte, 1),
		stored:  make(chan record.Stored, 1),
		resends: map[uint64]resend{},
	}
}

// Notify tells the uplink that the outbox has a new record.
func (u *Uplink) Notify() { poke(u.notify) }

// RefreshStatus asks for the retained status to be republished soon.
func (u *Uplink) RefreshStatus() { poke(u.status) }

// Tickets hands over the newest accepted ticket message payload: a slot of
// one, where a message arriving before the last was taken replaces it.
// However many messages arrive meanwhile (a flood of junk refused by
// [Config.AcceptTicket], or a burst of tickets), the one taken next is the
// newest, never an older one kept while the newest is dropped.
func (u *Uplink) Tickets() <-chan []byte { return u.tickets }

// Connected reports whether a session with the broker is up.
func (u *Uplink) Connected() bool { return u.up.Load() }

// Stats returns the counters.
func (u *Uplink) Stats() Stats {
	return Stats{
		Published:     u.published.Load(),
		Acked:         u.acked.Load(),
		Connects:      u.connects.Load(),
		TicketDropped: u.ticketDropped.Load(),
		Resent:        u.resent.Load(),
		StoredRefused: u.storedRefused.Load(),
	}
}

func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Run connects, drains and reconnects until ctx is cancelled. On
// cancellation it publishes the offline status itself before disconnecting.
// Cancellation is not an error.
func (u *Uplink) Run(ctx context.Context) error {
	backoff := u.cfg.MinBackoff
	failures := 0
	for ctx.Err() == nil {
		started := time.Now()
		err := u.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(started) > time.Minute {
			backoff, failures = u.cfg.MinBackoff, 0
		}
		failures++
		// A dead broker must not fill an SD card: log the first failures
		// of a run, then only every 20th.
		if (throttle.Every{First: 3, Nth: 20}).Log(int64(failures)) {
			u.log.Warn("broker session ended", "broker", u.cfg.Broker, "err", err, "attempt", failures, "retry_in", backoff)
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		backoff = min(backoff*2, u.cfg.MaxBackoff)
	}
	return nil
}

// conn is one connection's client and its liveness.
type conn struct {
	client mqtt.Client
	lost   chan struct{}
	once   sync.Once
}

func (c *conn) markLost() { c.once.Do(func() { close(c.lost) }) }

func (u *Uplink) connect(ctx context.Context) (*conn, error) {
	c := &conn{lost: make(chan struct{})}
	opts := mqtt.NewClientOptions().
		AddBroker(u.cfg.Broker).
		SetClientID(u.cfg.ClientID).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetStore(mqtt.NewMemoryStore()).
		SetKeepAlive(u.cfg.KeepAlive).
		SetPingTimeout(10*time.Second).
		SetConnectTimeout(10*time.Second).
		SetWriteTimeout(u.cfg.WriteTimeout).
		SetOrderMatters(true).
		SetBinaryWill(u.cfg.Topics.Status, u.cfg.Will, 1, true).
		SetConnectionLostHandler(func(mqtt.Client, error) { c.markLost() })
	if u.cfg.Username != "" {
		opts.SetUsername(u.cfg.Username)
		opts.SetPassword(u.cfg.Password)
	}
	if u.cfg.TLS != nil {
		opts.SetTLSConfig(u.cfg.TLS)
	}
	c.client = mqtt.NewClient(opts)
	if err := wait(ctx, c.client.Connect()); err != nil {
		// A connect abandoned on cancellation may still complete: end it,
		// or it lingers with its keepalive.
		c.client.Disconnect(0)
		return nil, fmt.Errorf("connect %s: %w", u.cfg.Broker, err)
	}
	return c, nil
}

func wait(ctx context.Context, t mqtt.Token) error {
	select {
	case <-t.Done():
		return t.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (u *Uplink) session(ctx context.Context) error {
	c, err := u.connect(ctx)
	if err != nil {
		return err
	}
	defer c.client.Disconnect(250)
	u.connects.Add(1)
	if err := wait(ctx, c.client.Publish(u.cfg.Topics.Status, 1, true, u.cfg.Status(true))); err != nil {
		return fmt.Errorf("publish status: %w", err)
	}
	if err := wait(ctx, c.client.Subscribe(u.cfg.Topics.Ticket, 1, u.onTicket)); err != nil {
		return fmt.Errorf("subscribe %s: %w", u.cfg.Topics.Ticket, err)
	}
	if err := u.subscribeStored(ctx, c); err != nil {
		return err
	}
	u.log.Info("connected to broker", "broker", u.cfg.Broker, "client_id", u.cfg.ClientID,
		"pending", u.outbox.Len())
	u.up.Store(true)
	u.cfg.OnConnected(true)
	defer func() {
		u.up.Store(false)
		u.cfg.OnConnected(false)
	}()
	f := &flight{acks: make(chan ack, u.cfg.Inflight)}
	err = u.drain(ctx, c, f)
	if ctx.Err() != nil {
		u.goodbye(c)
		err = nil
	}
	// Every publish still in flight gets its outcome before the session
	// ends: a PUBACK that arrived must remove its record now, or the next
	// session sends it again. Disconnect completes every pending token (a
	// lost connection has completed them already).
	c.client.Disconnect(250)
	if serr := u.settle(f); serr != nil && err == nil {
		err = serr
	}
	return err
}

// goodbye publishes the offline status on a clean stop: the broker sends the
// Last Will only when a connection is lost. Unlike the Will, made at
// connect, it tells the outbox as it is at the stop (epoch, last_seq,
// pending, stopped_at).
func (u *Uplink) goodbye(c *conn) {
	payload := u.cfg.Will
	if u.cfg.Status != nil {
		payload = u.cfg.Status(false)
	}
	t := c.client.Publish(u.cfg.Topics.Status, 1, true, payload)
	if !t.WaitTimeout(2*time.Second) || t.Error() != nil {
		u.log.Warn("offline status not acknowledged before stop", "err", t.Error())
	}
}

// onTicket runs on paho's router, one message at a time: it must not
// block.
func (u *Uplink) onTicket(_ mqtt.Client, m mqtt.Message) { u.ticket(m.Payload()) }

func (u *Uplink) ticket(payload []byte) {
	p := append([]byte(nil), payload...)
	if u.cfg.AcceptTicket != nil && u.cfg.AcceptTicket(p) != nil {
		return
	}
	u.offerTicket(p)
}

// offerTicket puts p into the one-slot hand-off, replacing what the reader
// has not taken yet. Only the router calls it, so after emptying the slot
// the send cannot find it full.
func (u *Uplink) offerTicket(p []byte) {
	for {
		select {
		case u.tickets <- p:
			return
		default:
		}
		select {
		case <-u.tickets:
			u.ticketDropped.Add(1)
		default: // the reader took it meanwhile
		}
	}
}

type ack struct {
	seq uint64
	err error
}

// flight is the publishes of one connection whose outcome has not been
// taken yet: each has a forwarder that will send exactly one ack.
type flight struct {
	acks     chan ack
	inflight int
}

// settleTimeout bounds the wait for the outcomes of a connection's last
// publishes; their tokens are already complete, so only a scheduler under
// heavy load makes it matter.
const settleTimeout = 30 * time.Second

// settle takes the outcome of every publish still in flight, blocking, and
// removes the acknowledged records in one commit.
func (u *Uplink) settle(f *flight) error {
	var batch []uint64
	timeout := time.NewTimer(settleTimeout)
	defer timeout.Stop()
	for f.inflight > 0 {
		select {
		case a := <-f.acks:
			f.inflight--
			if a.err == nil {
				batch = append(batch, a.seq)
			}
		case <-timeout.C:
			u.log.Error("publishes without an outcome after the session ended; they will be sent again",
				"count", f.inflight, "waited", settleTimeout)
			f.inflight = 0
		}
	}
	if err := u.outbox.Ack(batch...); err != nil {
		return err
	}
	u.acked.Add(int64(len(batch)))
	return nil
}

// drain publishes pending records in seq order, at most Inflight at a time,
// and removes each from the outbox once its PUBACK is trusted. It returns
// with publishes possibly still in f: the caller settles them.
func (u *Uplink) drain(ctx context.Context, c *conn, f *flight) error {
	var cursor uint64
	statusTick := time.NewTicker(u.cfg.StatusInterval)
	defer statusTick.Stop()
	// When the outbox empties, the status is refreshed (at most once a
	// second), so that a consumer's loss audit sees last_seq with nothing
	// pending without waiting for the next interval.
	var drainedStatus <-chan time.Time
	for {
		if free := u.cfg.Inflight - f.inflight; free > 0 {
			entries, err := u.outbox.Pending(cursor, free)
			if err != nil {
				return err
			}
			for _, e := range entries {
				t := c.client.Publish(u.cfg.Topics.Rating, 1, false, e.Data)
				u.published.Add(1)
				f.inflight++
				cursor = e.Seq
				go func(seq uint64) {
					<-t.Done()
					f.acks <- ack{seq, t.Error()}
				}(e.Seq)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.lost:
			// paho completed every token before telling of the loss; the
			// caller collects their outcomes.
			return errors.New("connection lost")
		case <-u.notify:
		case <-u.status:
			u.publishStatus(c)
		case <-statusTick.C:
			u.publishStatus(c)
		case <-drainedStatus:
			drainedStatus = nil
			u.publishStatus(c)
		case m := <-u.stored:
			if err := u.confirm(c, f, m); err != nil {
				return err
			}
		case a := <-f.acks:
			f.inflight--
			n, err := u.ackBatch(f, a)
			if err != nil {
				return err
			}
			if n > 0 && f.inflight == 0 && drainedStatus == nil && u.outbox.Len() == 0 {
				drainedStatus = time.After(time.Second)
			}
		}
	}
}

// ackBatch takes first and every other outcome already waiting, removes
// the acknowledged records from the outbox in one commit, and returns how
// many it removed. A failed publish is returned as an error (after the
// others are removed): the session must end, settle and resend.
func (u *Uplink) ackBatch(f *flight, first ack) (int, error) {
	var batch []uint64
	var failed error
	for a := first; ; {
		if a.err != nil && failed == nil {
			failed = fmt.Errorf("publish seq %d: %w", a.seq, a.err)
		} else if a.err == nil {
			batch = append(batch, a.seq)
		}
		select {
		case a = <-f.acks:
			f.inflight--
			continue
		default: // nothing more waiting now; later outcomes come to drain or settle
		}
		break
	}
	if err := u.outbox.Ack(batch...); err != nil {
		return 0, err
	}
	u.acked.Add(int64(len(batch)))
	return len(batch), failed
}

// publishStatus refreshes the retained status without waiting: a lost
// status is replaced by the next one.
func (u *Uplink) publishStatus(c *conn) {
	c.client.Publish(u.cfg.Topics.Status, 1, true, u.cfg.Status(true))
}

// subscribeStored asks for the hall's acknowledgements when the outbox
// keeps records for them. A broker whose ACL predates the topic refuses
// it: with MQTT 3.1.1 Mosquitto drops the connection, or answers the
// SUBACK with a failure. Either way it is said once and not asked again
// by this process, so the terminal keeps delivering; its records then
// await a confirmation that cannot come, until the keeping bounds.
func (u *Uplink) subscribeStored(ctx context.Context, c *conn) error {
	if _, ok := u.outbox.(confirmer); !ok || u.cfg.Topics.Stored == "" || u.storedRefused.Load() {
		return nil
	}
	t := c.client.Subscribe(u.cfg.Topics.Stored, 1, u.onStored)
	err := wait(ctx, t)
	refused := false
	if st, ok := t.(*mqtt.SubscribeToken); ok && err == nil {
		refused = st.Result()[u.cfg.Topics.Stored] == 0x80
	}
	select {
	case <-c.lost:
		refused = true
	default:
	}
	if err != nil && ctx.Err() == nil && !c.client.IsConnectionOpen() {
		refused = true
	}
	if refused {
		u.storedRefused.Store(true)
		u.log.Error("the broker refused the stored topic: records the broker acknowledged will wait for a confirmation that cannot come; let the device read it (hallrate-collector acl)",
			"topic", u.cfg.Topics.Stored)
		if err != nil || !c.client.IsConnectionOpen() {
			return fmt.Errorf("subscribe %s: refused", u.cfg.Topics.Stored)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", u.cfg.Topics.Stored, err)
	}
	return nil
}

// onStored runs on paho's router: it decodes and hands over the newest
// acknowledgement of this device's epoch, replacing one not yet taken.
func (u *Uplink) onStored(_ mqtt.Client, m mqtt.Message) {
	s, err := record.DecodeStored(m.Payload())
	if err != nil {
		u.log.Warn("stored acknowledgement ignored", "err", err)
		return
	}
	if s.Device != u.cfg.Device || s.Epoch != u.outbox.Epoch() {
		return
	}
	for {
		select {
		case u.stored <- s:
			return
		default:
		}
		select {
		case <-u.stored:
		default:
		}
	}
}

// resendLimit bounds the records resent on one acknowledgement.
const resendLimit = 256

// A record published again waits ConfirmWait before the next time, then
// twice as long after each, up to 2^maxBackoffShift times ConfirmWait (64
// minutes at the default 30 s): a record the hall refuses each time (it
// parks it as poison) is not sent every half minute for a week, and one an
// ACL refused for an hour still goes again within the hour after the fix.
const maxBackoffShift = 7

// resend is when a record was last published again, and how often.
type resend struct {
	at time.Time
	n  int
}

// confirm takes the hall's acknowledgement: what it covers leaves the
// outbox, and what it lacks is published again. A record the hall listed
// as missing is resent once it was acknowledged ConfirmWait ago; one above
// everything the hall has stored only when the hall, still publishing its
// acknowledgements, has stored nothing more of this terminal for
// ConfirmWait. Without acknowledgements (a collector away) nothing is
// resent, so an offline collector's broker queue is never filled twice.
func (u *Uplink) confirm(c *conn, f *flight, m record.Stored) error {
	ob, ok := u.outbox.(confirmer)
	if !ok {
		return nil
	}
	now := time.Now()
	wait := u.cfg.ConfirmWait
	if m.HighestSeq != u.confirmHighest || u.confirmSince.IsZero() {
		u.confirmHighest, u.confirmSince = m.HighestSeq, now
	}
	stalled := now.Sub(u.confirmSince) >= wait
	for seq := range u.resends {
		if seq <= m.ThroughSeq {
			delete(u.resends, seq)
		}
	}
	again, err := ob.Confirm(buffer.Confirmation{Through: m.ThroughSeq, Highest: m.HighestSeq, Missing: m.Missing, Beyond: stalled}, resendLimit,
		func(x buffer.Unconfirmed) bool {
			r := u.resends[x.Seq]
			if now.Sub(r.at) < wait<<min(r.n, maxBackoffShift) || now.Sub(x.AckedAt) < wait {
				return false
			}
			return x.Missing || (stalled && x.Seq > m.HighestSeq)
		})
	if err != nil {
		return err
	}
	for _, e := range again {
		t := c.client.Publish(u.cfg.Topics.Rating, 1, false, e.Data)
		r := u.resends[e.Seq]
		u.resends[e.Seq] = resend{at: now, n: r.n + 1}
		u.resent.Add(1)
		f.inflight++
		go func(seq uint64) {
			<-t.Done()
			f.acks <- ack{seq, t.Error()}
		}(e.Seq)
	}
	if len(again) > 0 {
		u.log.Warn("records the broker acknowledged but the hall has not stored: published again",
			"count", len(again), "from_seq", again[0].Seq, "to_seq", again[len(again)-1].Seq,
			"hall_through_seq", m.ThroughSeq, "hall_highest_seq", m.HighestSeq)
	}
	return nil
}
