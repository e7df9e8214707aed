package listen

import (
	"reflect"
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
