package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestConnString(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"defaults", Config{}, "postgres://kong@127.0.0.1:5432/kong?sslmode=disable"},
		{"fields", Config{Host: "db", Port: 6543, User: "u", Password: "p@ss word", Database: "gv"},
			"postgres://u:p%40ss%20word@db:6543/gv?sslmode=disable"},
		{"ipv6", Config{Host: "::1"}, "postgres://kong@[::1]:5432/kong?sslmode=disable"},
		{"dsn wins", Config{Host: "db", DSN: "postgres://x@y/z"}, "postgres://x@y/z"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.cfg.ConnString(); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestOpenUnavailable(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close() // nothing listens there now

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = Open(ctx, Config{Host: "127.0.0.1", Port: port, ConnectTimeout: time.Second})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("got %v, want ErrUnavailable", err)
	}
}

// TestUnavailableAfterOpen: once the database cannot be reached, reads and
// writes fail with ErrUnavailable, so the admin API can answer 503.
func TestUnavailableAfterOpen(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	direct := bootstrapped(t)
	cc := direct.pool.Config().ConnConfig
	proxy := startTCPProxy(t, net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port))))
	host, port, _ := net.SplitHostPort(proxy.addr())
	dsn := fmt.Sprintf("postgres://%s@%s:%s/%s?sslmode=disable", cc.User, host, port, cc.Database)
	s, err := Open(ctx, Config{DSN: dsn, ConnectTimeout: time.Second})
	if err != nil {
		t.Fatalf("open through proxy: %v", err)
	}
	t.Cleanup(s.Close)
	proxy.close() // the database is now unreachable

	cases := []struct {
		name string
		run  func() error
	}{
		{"ping", func() error { return s.Ping(ctx) }},
		{"get", func() error { _, err := s.Get(ctx, Services, uuid.NewString()); return err }},
		{"list", func() error { _, _, err := s.List(ctx, Services, Page{Size: 10}); return err }},
		{"insert", func() error { _, err := s.Insert(ctx, Services, serviceRow("x")); return err }},
		{"delete", func() error { _, err := s.Delete(ctx, Services, uuid.NewString()); return err }},
		{"events", func() error { _, err := s.EventsSince(ctx, 0, 10); return err }},
		{"load config", func() error { _, err := s.LoadConfig(ctx, []Table{Services}, 10); return err }},
		{"nodes", func() error { _, err := s.Nodes(ctx); return err }},
		{"touch node", func() error { return s.TouchNode(ctx, "a") }},
		{"purge events", func() error { _, err := s.PurgeEvents(ctx, time.Hour); return err }},
		{"check schema", func() error { return s.CheckSchema(ctx) }},
		{"bootstrap", func() error { return s.Bootstrap(ctx) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.run(); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("got %v, want ErrUnavailable", err)
			}
		})
	}
}

// tcpProxy forwards connections to a target until closed; closing it cuts
// every connection and refuses new ones, like a database host going away.
type tcpProxy struct {
	l     net.Listener
	mu    sync.Mutex // guards conns
	conns []net.Conn
}

func startTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	p := &tcpProxy{l: l}
	t.Cleanup(p.close)
	go p.serve(target)
	return p
}

func (p *tcpProxy) addr() string { return p.l.Addr().String() }

func (p *tcpProxy) serve(target string) {
	for {
		in, err := p.l.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", target)
		if err != nil {
			in.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(out, in); out.Close() }()
		go func() { _, _ = io.Copy(in, out); in.Close() }()
	}
}

func (p *tcpProxy) close() {
	p.l.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}
