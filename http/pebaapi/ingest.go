package pebaapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/auth"
	"github.com/peba-go/peba/ews"
	"github.com/peba-go/peba/http/clientip"
	"github.com/peba-go/peba/ingest"
)

// resultOK is the answer ewsposter must see to consider a batch delivered
// (peba.md §4.1, ewsposter.md §3.4). Any other answer makes it spool and
// resend the batch, which is what we want whenever we did not commit it.
const resultOK = "<Result><StatusCode>OK</StatusCode><Text></Text></Result>"

// bodyBufs recycles the buffers POST bodies are read into. The decoder
// copies everything it keeps (ews.TestDecodeKeepsNothingOfTheBody), so a
// buffer is free again once the handler returns. io.ReadAll grew a new
// slice from 512 bytes for every POST: a fifth of all the memory ingest
// allocated at full load (docs/performance.md, session 7).
var bodyBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBody is the largest buffer kept for reuse; a rare huge body is
// left to the garbage collector instead of being pinned in the pool.
const maxPooledBody = 4 << 20

func putBodyBuf(b *bytes.Buffer) {
	if b.Cap() <= maxPooledBody {
		b.Reset()
		bodyBufs.Put(b)
	}
}

// roomWaiter is implemented by an ingest stage with an admission bound
// (ingest.Pipeline).
type roomWaiter interface {
	WaitRoom(ctx context.Context, max time.Duration) bool
}

// handlePostSimpleMessage is PEBA's PUT service: POST /ews-0.1/alert/postSimpleMessage.
//
// Every answer carries a <Result><StatusCode> body: ewsposter crashes on a
// body without one and loses the batch (ewsposter.md §3.4). Success is
// answered only after the batch is committed; every failure that a resend
// could cure is a 503 with Retry-After.
func (a *API) handlePostSimpleMessage(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		// PEBA answered 500 with this text (B-33); 405 is what it means.
		w.Header().Set("Allow", http.MethodPost)
		writeResult(w, http.StatusMethodNotAllowed, "Error", "POST is required for this action.")
		a.countPost("method")
		return
	}
	lim := &a.cfg.Limits
	src := rejectSource{addr: lim.ClientIP.Addr(r)}
	addrKey := clientip.Key(src.addr)
	if clientip.Contains(lim.BlockedAddresses, src.addr) {
		a.reject(w, r, http.StatusForbidden, "blocked", "this source address is blocked", src)
		return
	}
	// An address still in debt is refused before its body is read: a
	// flooder costs no parsing.
	if wait := lim.PerAddress.Wait(addrKey); wait > 0 {
		a.tooMany(w, r, wait, "source address", src)
		return
	}
	// A full ingest queue refuses before the body is read and decoded:
	// that work would be wasted and slow the store further. It waits up to
	// QueueWait for the transaction being applied to make room first
	// (ingest.Pipeline.WaitRoom).
	if o, ok := a.ingest.(roomWaiter); ok && !o.WaitRoom(r.Context(), a.cfg.QueueWait) {
		a.unavailable(w, r, peba.ErrorMessage(ingest.ErrOverloaded), src)
		return
	}
	buf := bodyBufs.Get().(*bytes.Buffer)
	defer putBodyBuf(buf)
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, a.cfg.MaxBodyBytes))
	body := buf.Bytes()
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			a.reject(w, r, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("body exceeds %d bytes", a.cfg.MaxBodyBytes), src)
			return
		}
		a.reject(w, r, http.StatusBadRequest, "bad_request", "cannot read body", src)
		return
	}
	if len(body) == 0 {
		a.reject(w, r, http.StatusBadRequest, "bad_request", "empty body: expected EWS XML", src)
		return
	}
	batch, err := ews.Decode(body, a.decodeOpts)
	if err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, ews.ErrTooManyAlerts) {
			status = http.StatusRequestEntityTooLarge
		}
		a.reject(w, r, status, "bad_request", err.Error(), src)
		return
	}
	src.user = batch.Username
	if len(batch.Events) > 0 {
		src.sensor = batch.Events[0].PeerIdent
	}
	if !batch.HasAuth {
		a.reject(w, r, http.StatusForbidden, "unauthorized", "missing credentials: Authentication needs username and token", src)
		return
	}
	p, err := a.auth.Authenticate(r.Context(), batch.Username, batch.Token)
	if err != nil {
		if peba.ErrorCode(err) == peba.EUNAUTHORIZED {
			a.reject(w, r, http.StatusForbidden, "unauthorized", "invalid credentials", src)
			return
		}
		a.log.Error("Cannot authenticate sender", "user", clip(batch.Username), "error", err)
		a.unavailable(w, r, "cannot check credentials, retry later", src)
		return
	}
	if p.User != nil && p.User.GetOnly {
		a.reject(w, r, http.StatusForbidden, "unauthorized", "this user may read but not submit", src)
		return
	}
	if lim.Blocked[batch.Username] {
		a.reject(w, r, http.StatusForbidden, "blocked", "this user is blocked", src)
		return
	}
	if ident, ok := lim.blockedSensor(batch.Events); ok {
		src.sensor = ident
		a.reject(w, r, http.StatusForbidden, "blocked", "sensor "+clip(ident)+" is blocked", src)
		return
	}
	if wait, what := lim.charge(addrKey, batch.Username, batch.Events); wait > 0 {
		a.tooMany(w, r, wait, what, src)
		return
	}
	res, err := a.ingest.Submit(r.Context(), p.Domain, batch.Events)
	if err != nil {
		if peba.ErrorCode(err) == peba.EINVALID {
			// The store could never hold this batch: a resend cannot cure
			// it, so do not invite one.
			a.reject(w, r, http.StatusBadRequest, "bad_request", peba.ErrorMessage(err), src)
			return
		}
		a.log.Warn("Batch not stored", "user", clip(batch.Username), "events", len(batch.Events), "error", err)
		a.unavailable(w, r, peba.ErrorMessage(err), src)
		return
	}
	// New vs. resent is known only when the store applies the batch, later:
	// peba_ingest_events_total counts that.
	a.mAlerts.WithLabelValues("accepted").Add(float64(res.Accepted))
	a.mAlerts.WithLabelValues("skipped").Add(float64(len(batch.Skipped)))
	a.mBatch.Observe(float64(len(batch.Events) + len(batch.Skipped)))
	a.countPost("ok")
	if len(batch.Skipped) == 0 {
		w.Header().Set("Content-Type", "text/xml; charset=utf-8")
		io.WriteString(w, resultOK)
		return
	}
	// Alerts that can never be stored do not fail the batch (a resend could
	// not cure them); the sender learns how many and why.
	reasons := make([]string, 0, len(batch.Skipped))
	for _, s := range batch.Skipped {
		reasons = append(reasons, s.Reason)
		if len(reasons) == 10 {
			reasons = append(reasons, fmt.Sprintf("and %d more", len(batch.Skipped)-10))
			break
		}
	}
	a.log.Info("Alerts skipped", "user", clip(batch.Username), "skipped", len(batch.Skipped), "stored", len(batch.Events), "first_reason", clip(batch.Skipped[0].Reason))
	writeResult(w, http.StatusOK, "OK", fmt.Sprintf("%d of %d alerts skipped: %s",
		len(batch.Skipped), len(batch.Skipped)+len(batch.Events), strings.Join(reasons, "; ")))
}

// rejectSource is who sent a rejected batch, for the log line: as much as
// is known when it is rejected.
type rejectSource struct {
	addr         netip.Addr
	user, sensor string
}

// reject answers a refused batch and logs which sensor and why, throttled
// so that a flood cannot fill a disk (users.md §2 item 4).
func (a *API) reject(w http.ResponseWriter, r *http.Request, status int, result, text string, src rejectSource) {
	a.countPost(result)
	a.rejectLog.Warn(r.Context(), "Batch rejected", "status", status, "reason", clip(text),
		"user", clip(src.user), "sensor_id", clip(src.sensor), "client_ip", src.addr.String())
	writeResult(w, status, "Error", text)
}

func (a *API) unavailable(w http.ResponseWriter, r *http.Request, text string, src rejectSource) {
	w.Header().Set("Retry-After", strconv.Itoa(a.retryAfter))
	a.reject(w, r, http.StatusServiceUnavailable, "unavailable", text, src)
}

func (a *API) countPost(result string) { a.mPosts.WithLabelValues(result).Inc() }

func writeResult(w http.ResponseWriter, status int, code, text string) {
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(status)
	w.Write(ews.Result(code, text))
}

// clip bounds attacker-controlled values before they reach a log line.
func clip(s string) string {
	const max = 200
	if len(s) <= max {
		return strconv.QuoteToASCII(s)
	}
	return strconv.QuoteToASCII(s[:max]) + "..."
}

// Authenticator checks credentials (auth.Authenticator implements it).
type Authenticator interface {
	Authenticate(ctx context.Context, user, token string) (auth.Principal, error)
}

// Submitter stores events (ingest.Pipeline implements it).
type Submitter interface {
	Submit(ctx context.Context, domain peba.Domain, events []peba.Event) (ingest.Result, error)
}
