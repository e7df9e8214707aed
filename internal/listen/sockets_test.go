package listen

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A socket handed over is the same socket: a connection that arrived in
// its queue before the handover is accepted by the new owner, and the old
// owner closing its copy refuses nothing.
func TestSocketsHandover(t *testing.T) {
	ctx := context.Background()
	old, err := NewSockets(nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := old.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	// Bound under its configured name, "127.0.0.1:0"; hand it over.
	files, env, err := old.Handover(3)
	if err != nil || len(files) != 1 {
		t.Fatalf("handover: %d files, %v", len(files), err)
	}
	// The new process would find the copy at descriptor 3; here it gets a
	// descriptor of its own with the same socket.
	fd, err := syscall.Dup(int(files[0].Fd()))
	if err != nil {
		t.Fatal(err)
	}
	files[0].Close()
	if want := EnvInherited + "=127.0.0.1:0=3"; env != want {
		t.Errorf("got env %q, want %q", env, want)
	}
	env = strings.Replace(env, "=3", "="+strconv.Itoa(fd), 1)

	waiting, err := net.Dial("tcp", addr) // queued, not accepted by anyone yet
	if err != nil {
		t.Fatal(err)
	}
	defer waiting.Close()
	ln.Close() // the old owner stops listening

	next, err := NewSockets([]string{"PATH=/bin", env})
	if err != nil || !next.HandedDown() {
		t.Fatalf("got %v, handed down %v; want the socket handed down", err, next.HandedDown())
	}
	taken, err := next.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	if got := taken.Addr().String(); got != addr {
		t.Fatalf("took %s, want the handed-down %s", got, addr)
	}
	after, err := net.Dial("tcp", addr) // arrives after the old owner closed
	if err != nil {
		t.Fatalf("a connection after the handover was refused: %v", err)
	}
	defer after.Close()
	for i := range 2 { // accepted in order of arrival
		server, err := acceptWithin(taken, 5*time.Second)
		if err != nil {
			t.Fatalf("accept %d: %v", i, err)
		}
		fmt.Fprintf(server, "hello %d", i)
		server.Close()
	}
	for i, client := range []net.Conn{waiting, after} {
		got, _ := io.ReadAll(client)
		if want := "hello " + strconv.Itoa(i); string(got) != want {
			t.Errorf("client %d got %q, want %q", i, got, want)
		}
	}
}

func acceptWithin(ln net.Listener, d time.Duration) (net.Conn, error) {
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(d))
	return ln.Accept()
}

func TestSocketsBadEnvironment(t *testing.T) {
	for _, bad := range []string{"127.0.0.1:80", "127.0.0.1:80=x", "127.0.0.1:80=1"} {
		if _, err := NewSockets([]string{EnvInherited + "=" + bad}); err == nil {
			t.Errorf("%q: got no error, want one", bad)
		}
	}
	s, err := NewSockets([]string{EnvInherited + "="})
	if err != nil || s.HandedDown() {
		t.Errorf("an empty %s: got %v, handed down %v; want neither", EnvInherited, err, s.HandedDown())
	}
}
