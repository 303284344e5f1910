package hpfeeds

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// Broker is one hpfeeds broker to subscribe to.
type Broker struct {
	Addr     string   // host:port
	Ident    string   // hpfeeds identity, at most 255 bytes
	Secret   string   // the identity's secret
	Channels []string // channels to subscribe to; each 1..255 bytes
	TLS      bool     // connect with TLS (hpfeeds3 brokers can serve TLS)
}

// Message is one OP_PUBLISH delivered by a broker.
type Message struct {
	Broker  string // Broker.Addr it came from
	Channel string
	Ident   string // the publisher's ident as the broker forwarded it
	Payload []byte // owned by the handler
}

// Handler receives every message. It is called synchronously from the
// broker's read loop, so a slow handler slows (and finally, through the
// broker's write deadline, disconnects) that broker's subscription, never
// other brokers. hpfeeds has no acknowledgement: a message for which the
// handler returns an error is lost; it is logged and counted in
// BrokerState.HandlerErrors.
type Handler func(ctx context.Context, m Message) error

// Status is the connection state of one broker.
type Status string

// Statuses reported by State.
const (
	StatusIdle       Status = "idle"       // Run has not started
	StatusConnecting Status = "connecting" // dialing, waiting for OP_INFO, authenticating
	StatusConnected  Status = "connected"  // auth and subscriptions sent, reading
	StatusBackoff    Status = "backoff"    // waiting before the next attempt
	StatusStopped    Status = "stopped"    // Run returned
)

// BrokerState is a snapshot of one broker's connection, for /feeds/status
// and /metrics. Counters are cumulative since Run started.
type BrokerState struct {
	Addr          string
	Ident         string
	Status        Status
	Since         time.Time // when Status was entered
	LastError     string    // last connection error or broker OP_ERROR text
	LastErrorTime time.Time
	LastMessage   time.Time // when the last OP_PUBLISH arrived
	Messages      uint64    // OP_PUBLISH frames received
	HandlerErrors uint64    // messages the handler rejected (lost)
	Errors        uint64    // failed attempts, dropped connections and OP_ERRORs
	Connects      uint64    // sessions that reached StatusConnected
}

// Defaults of the Client's tuning fields.
const (
	DefaultMinBackoff  = time.Second
	DefaultMaxBackoff  = 30 * time.Second
	DefaultDialTimeout = 10 * time.Second
)

// Client subscribes to one or more brokers and hands every message to
// Handler. Set the fields, then call Run once. State may be called at any
// time from any goroutine.
type Client struct {
	Brokers []Broker
	Handler Handler
	Logger  *slog.Logger // nil: slog.Default()
	// TLSConfig is the base configuration for brokers with TLS set (nil: the
	// system roots); ServerName defaults to the host of Broker.Addr.
	TLSConfig *tls.Config
	// MinBackoff and MaxBackoff bound the exponential, jittered wait between
	// attempts (defaults 1 s and 30 s). DialTimeout bounds dialing plus the
	// wait for OP_INFO (default 10 s).
	MinBackoff, MaxBackoff, DialTimeout time.Duration

	once   sync.Once
	mu     sync.Mutex
	states []BrokerState
}

func (c *Client) init() {
	c.once.Do(func() {
		c.states = make([]BrokerState, len(c.Brokers))
		for i, b := range c.Brokers {
			c.states[i] = BrokerState{Addr: b.Addr, Ident: b.Ident, Status: StatusIdle}
		}
	})
}

// State returns a snapshot of every broker's state, in Brokers order.
func (c *Client) State() []BrokerState {
	c.init()
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]BrokerState(nil), c.states...)
}

func (c *Client) update(i int, f func(*BrokerState)) {
	c.mu.Lock()
	f(&c.states[i])
	c.mu.Unlock()
}

func (c *Client) setStatus(i int, s Status) {
	now := time.Now()
	c.update(i, func(st *BrokerState) { st.Status, st.Since = s, now })
}

func (c *Client) recordError(i int, err error) {
	now := time.Now()
	c.update(i, func(st *BrokerState) {
		st.Errors++
		st.LastError, st.LastErrorTime = clip(err.Error(), 512), now
	})
}

// validate checks the configuration before anything connects.
func (c *Client) validate() error {
	if c.Handler == nil {
		return errors.New("cannot start hpfeeds client: no handler")
	}
	for _, b := range c.Brokers {
		if _, _, err := net.SplitHostPort(b.Addr); err != nil {
			return fmt.Errorf("cannot start hpfeeds client: broker address %q: %w", b.Addr, err)
		}
		if b.Ident == "" || len(b.Ident) > 255 {
			return fmt.Errorf("cannot start hpfeeds client: broker %s: ident must be 1..255 bytes", b.Addr)
		}
		if len(b.Channels) == 0 {
			return fmt.Errorf("cannot start hpfeeds client: broker %s: no channels", b.Addr)
		}
		for _, ch := range b.Channels {
			if ch == "" || len(ch) > 255 {
				return fmt.Errorf("cannot start hpfeeds client: broker %s: channel %q must be 1..255 bytes", b.Addr, ch)
			}
		}
	}
	return nil
}

// Run connects to every broker and delivers messages until ctx is
// cancelled; it then closes the connections and returns nil. Connection
// failures, broker errors (OP_ERROR, e.g. a wrong secret) and dropped
// connections are logged and retried forever with backoff; Run returns an
// error only for an invalid configuration, before connecting.
func (c *Client) Run(ctx context.Context) error {
	c.init()
	if err := c.validate(); err != nil {
		return err
	}
	var wg sync.WaitGroup
	for i := range c.Brokers {
		wg.Go(func() { c.runBroker(ctx, i) })
	}
	wg.Wait()
	return nil
}

func (c *Client) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.Default()
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// runBroker keeps one broker subscribed until ctx ends.
func (c *Client) runBroker(ctx context.Context, i int) {
	b := c.Brokers[i]
	log := c.logger().With("broker", b.Addr, "ident", b.Ident)
	minB := orDefault(c.MinBackoff, DefaultMinBackoff)
	maxB := max(orDefault(c.MaxBackoff, DefaultMaxBackoff), minB)
	attempt := 0
	for ctx.Err() == nil {
		c.setStatus(i, StatusConnecting)
		start := time.Now()
		delivered, err := c.session(ctx, i, log)
		if ctx.Err() != nil {
			break
		}
		c.recordError(i, err)
		// A session that delivered something or stayed up for a while was
		// healthy: the next attempt starts from the minimum again. A broker
		// that accepts and immediately rejects us (wrong secret) keeps
		// growing the backoff up to the cap.
		if delivered || time.Since(start) >= maxB {
			attempt = 0
		}
		wait := backoff(minB, maxB, attempt)
		attempt++
		log.Warn("hpfeeds broker disconnected, retrying", "err", err, "retry_in", wait)
		c.setStatus(i, StatusBackoff)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
	c.setStatus(i, StatusStopped)
}

// backoff returns the wait before attempt n (0-based): min*2^n capped at
// max, with "equal jitter" (half fixed, half random) so that many clients
// restarted together do not reconnect in lockstep.
func backoff(minB, maxB time.Duration, n int) time.Duration {
	d := maxB
	if n < 30 && minB<<n < maxB {
		d = minB << n
	}
	return d/2 + rand.N(d/2+1)
}

// session runs one connection: dial, OP_INFO, auth, subscribe, then read
// until the connection fails. It reports whether any message was delivered
// and always returns a non-nil error (the reason the session ended).
func (c *Client) session(ctx context.Context, i int, log *slog.Logger) (delivered bool, err error) {
	b := c.Brokers[i]
	timeout := orDefault(c.DialTimeout, DefaultDialTimeout)
	conn, err := c.dial(ctx, b, timeout)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	// Closing the connection is the only way to interrupt a blocked read.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	r := bufio.NewReaderSize(conn, 64<<10)
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return false, fmt.Errorf("cannot set deadline: %w", err)
	}
	f, err := ReadFrame(r)
	if err != nil {
		return false, fmt.Errorf("cannot read broker info: %w", err)
	}
	if f.Op == OpError {
		return false, fmt.Errorf("broker error: %s", ParseError(f.Body))
	}
	if f.Op != OpInfo {
		return false, fmt.Errorf("cannot authenticate: first frame has opcode %d, not OP_INFO: %w", f.Op, ErrProtocol)
	}
	name, nonce, err := ParseInfo(f.Body)
	if err != nil {
		return false, err
	}
	// hpfeeds has no acknowledgement for auth or subscribe: brokers answer
	// a failure with OP_ERROR (and usually a close), success with silence.
	// So auth and all subscriptions go out in one write, and the session
	// counts as connected once they are written.
	out, err := AppendAuth(nil, b.Ident, b.Secret, nonce)
	if err != nil {
		return false, err
	}
	for _, ch := range b.Channels {
		if out, err = AppendSubscribe(out, b.Ident, ch); err != nil {
			return false, err
		}
	}
	if _, err := conn.Write(out); err != nil {
		return false, fmt.Errorf("cannot send auth and subscribe: %w", err)
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		return false, fmt.Errorf("cannot clear deadline: %w", err)
	}
	now := time.Now()
	c.update(i, func(st *BrokerState) {
		st.Status, st.Since = StatusConnected, now
		st.Connects++
	})
	log.Info("hpfeeds subscribed", "broker_name", clip(name, 64), "channels", b.Channels)

	brokerErr := "" // the last OP_ERROR explains a close that follows it
	for {
		f, err := ReadFrame(r)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			if brokerErr != "" {
				return delivered, fmt.Errorf("cannot read from broker after broker error %q: %w", brokerErr, err)
			}
			return delivered, fmt.Errorf("cannot read from broker: %w", err)
		}
		switch f.Op {
		case OpPublish:
			ident, channel, payload, err := ParsePublish(f.Body)
			if err != nil {
				return delivered, err
			}
			delivered = true
			now := time.Now()
			c.update(i, func(st *BrokerState) { st.Messages++; st.LastMessage = now })
			m := Message{Broker: b.Addr, Channel: channel, Ident: ident, Payload: payload}
			if err := c.Handler(ctx, m); err != nil {
				c.update(i, func(st *BrokerState) { st.HandlerErrors++ })
				log.Warn("hpfeeds message lost: handler rejected it", "channel", clip(channel, 255), "err", err)
			}
		case OpError:
			// Not fatal (unlike SecKC's relay, seckc.md §5): a broker that
			// means it closes the connection and we back off; the d1str0
			// broker keeps the session open after a refused subscription,
			// so the other channels keep flowing.
			msg := ParseError(f.Body)
			brokerErr = msg
			c.recordError(i, fmt.Errorf("broker error: %s", msg))
			log.Error("hpfeeds broker error", "msg", msg)
		default:
			return delivered, fmt.Errorf("cannot handle opcode %d from broker: %w", f.Op, ErrProtocol)
		}
	}
}

// dial opens the TCP (or TLS) connection with TCP keep-alive: hpfeeds has no
// application ping, so keep-alive is what detects a dead broker (SecKC's
// relay uses a 10 s idle time, seckc.md §5).
func (c *Client) dial(ctx context.Context, b Broker, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{
		Timeout:         timeout,
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 10 * time.Second, Interval: 10 * time.Second, Count: 3},
	}
	if !b.TLS {
		conn, err := d.DialContext(ctx, "tcp", b.Addr)
		if err != nil {
			return nil, fmt.Errorf("cannot connect to broker: %w", err)
		}
		return conn, nil
	}
	cfg := &tls.Config{}
	if c.TLSConfig != nil {
		cfg = c.TLSConfig.Clone()
	}
	if cfg.ServerName == "" {
		host, _, _ := net.SplitHostPort(b.Addr)
		cfg.ServerName = host
	}
	td := &tls.Dialer{NetDialer: d, Config: cfg}
	conn, err := td.DialContext(ctx, "tcp", b.Addr)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to broker with TLS: %w", err)
	}
	return conn, nil
}
