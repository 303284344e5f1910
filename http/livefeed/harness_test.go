package livefeed_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/peba-go/peba"
	"github.com/peba-go/peba/auth"
	"github.com/peba-go/peba/http/livefeed"
	"github.com/peba-go/peba/hub"
	"github.com/prometheus/client_golang/prometheus"
)

// users is an in-memory user table for the real auth.Authenticator.
type users map[string]*peba.User

func (u users) FindUser(_ context.Context, name string) (*peba.User, error) {
	if x, ok := u[name]; ok {
		return x, nil
	}
	return nil, peba.ErrNotFound
}

type env struct {
	hub *hub.Hub
	lf  *livefeed.Server
	srv *httptest.Server
	reg *prometheus.Registry
}

// Credentials accepted by newEnv's authenticator.
const (
	aliceCred = "alice:alice-token" // private user: entitled
	bobCred   = "bob:bob-token"     // CommunityOnly user: not entitled
	commCred  = "community:community-token"
)

// newEnv starts a live feed on a real HTTP server whose Read/WriteTimeout
// (1 s) are far shorter than the streams the tests keep open.
func newEnv(t testing.TB, heartbeat time.Duration) *env {
	t.Helper()
	return newEnvTimeout(t, heartbeat, time.Second)
}

// newEnvTimeout is newEnv with the server's Read/WriteTimeout set to
// timeout. Socket.IO's long-polling requests must fit in it (like the 25 s
// ping interval in production's 60 s), and so must the handshake's token
// check, which takes seconds under the race detector.
func newEnvTimeout(t testing.TB, heartbeat, timeout time.Duration) *env {
	t.Helper()
	u := users{}
	for name, tok := range map[string]string{"alice": "alice-token", "bob": "bob-token"} {
		h, err := auth.HashToken(tok)
		if err != nil {
			t.Fatal(err)
		}
		u[name] = &peba.User{Name: name, TokenHash: h, CommunityOnly: name == "bob"}
	}
	a := auth.New(auth.Credentials{User: "community", Token: "community-token"}, u, auth.Options{})
	reg := prometheus.NewRegistry()
	h := hub.New(hub.Options{Registerer: reg})
	budget, _ := strconv.Atoi(os.Getenv("PEBA_LIVEFEED_WRITEBUDGET")) // TestLoad's knob; 0: the default
	lf := livefeed.New(livefeed.Options{Hub: h, Auth: a, Heartbeat: heartbeat, Registerer: reg, WriteBudget: budget})
	mux := http.NewServeMux()
	lf.Register(mux)
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.ReadTimeout = timeout
	srv.Config.WriteTimeout = timeout
	srv.Start()
	t.Cleanup(func() {
		lf.Close()
		h.Close()
		srv.CloseClientConnections()
		srv.Close()
	})
	return &env{hub: h, lf: lf, srv: srv, reg: reg}
}

// event returns a realistic event; its target and sensor fields must never
// reach anonymous viewers.
func event(id string, d peba.Domain) peba.Event {
	return peba.Event{
		ID: id, Domain: d, Origin: "ews", ReceivedTime: time.Now(),
		PeerIdent: "sensor-1", PeerType: "SSH/console(cowrie)", SensorUUID: "uuid-secret-1",
		Hostname: "tpot-host", ExternalIP: "198.51.100.77", InternalIP: "10.0.0.77",
		SrcIP: netip.MustParseAddr("203.0.113.9"), SrcPort: 40000,
		DstIP: netip.MustParseAddr("198.51.100.77"), DstPort: 22, Transport: "tcp",
		Username: "root", Password: "hunter2",
	}
}

func (e *env) metric(t testing.TB, name string) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				if c := m.GetCounter(); c != nil {
					sum += c.GetValue()
				} else {
					sum += m.GetGauge().GetValue()
				}
			}
		}
	}
	return sum
}
