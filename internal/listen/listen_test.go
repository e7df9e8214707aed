package listen

import (
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    []Listener
		wantErr bool
	}{
		{"off", nil, false},
		{"", nil, false},
		{"0.0.0.0:8000", []Listener{{Entry: "0.0.0.0:8000", Addr: "0.0.0.0:8000", Host: "0.0.0.0", Port: 8000, Flags: []string{}}}, false},
		{"0.0.0.0:8000 reuseport backlog=16384, [::1]:8443 ssl http2", []Listener{
			{Entry: "0.0.0.0:8000 reuseport backlog=16384", Addr: "0.0.0.0:8000", Host: "0.0.0.0", Port: 8000, Flags: []string{"reuseport", "backlog=16384"}},
			{Entry: "[::1]:8443 ssl http2", Addr: "[::1]:8443", Host: "::1", Port: 8443, Flags: []string{"ssl", "http2"}},
		}, false},
		{"8000", nil, true},
		{"host:port", nil, true},
		{"127.0.0.1:70000", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			if (err != nil) != tt.wantErr || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, %v; want %+v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
	ls, _ := Parse("127.0.0.1:1 ssl backlog=5")
	if !ls[0].Has("ssl") || !ls[0].Has("backlog") || ls[0].Has("http2") {
		t.Errorf("Has: got %+v", ls[0])
	}
}

// TestCheck follows Kong's accepted flags (kong/conf_loader/listeners.lua
// subsystem_flags.http): unknown ones are refused with the usage line,
// known ones Grapevine cannot honour with a message saying so.
func TestCheck(t *testing.T) {
	tests := []struct {
		entry   string
		wantErr string // "" for none
	}{
		{"0.0.0.0:8000 reuseport backlog=16384", ""},
		{"0.0.0.0:8443 http2 ssl reuseport backlog=16384", ""},
		{"0.0.0.0:8443 ssl deferred bind", ""},
		{"0.0.0.0:8000 backlog=x", "unknown flag"},
		{"0.0.0.0:8000 sll", "unknown flag"},
		{"0.0.0.0:8000 proxy_protocol", "not supported"},
		{"0.0.0.0:8000 so_keepalive=on", "not supported"},
		{"0.0.0.0:8000 http2", ""}, // h2c beside HTTP/1.1, as nginx's "http2 on"
	}
	for _, tt := range tests {
		t.Run(tt.entry, func(t *testing.T) {
			ls, err := Parse(tt.entry)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			err = ls[0].Check()
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("got %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}
