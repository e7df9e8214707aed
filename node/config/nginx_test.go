package config

import (
	"testing"
	"time"
)

func TestParseNginxTime(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"60", 60 * time.Second, false},
		{"60s", 60 * time.Second, false},
		{"500ms", 500 * time.Millisecond, false},
		{"2m", 2 * time.Minute, false},
		{"1h", time.Hour, false},
		{"1d", 24 * time.Hour, false},
		{"", 0, true},
		{"1x", 0, true},
		{"-5s", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseNginxTime(tt.in)
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Fatalf("got %v, %v; want %v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestNginxKeys(t *testing.T) {
	c := Default()
	for key, value := range map[string]string{
		"nginx_proxy_client_header_timeout":       "5s",
		"nginx_http_client_max_body_size":         "1m",
		"nginx_http_client_body_buffer_size":      "64k",
		"nginx_events_worker_connections":         "100",
		"nginx_main_worker_rlimit_nofile":         "auto",
		"nginx_proxy_large_client_header_buffers": "2 16k",
	} {
		if err := keyIndex[key].set(&c, value); err != nil {
			t.Fatalf("%s = %s: %v", key, value, err)
		}
	}
	if c.ClientHeaderTimeout != 5*time.Second || c.ClientMaxBodySize != 1<<20 || c.ClientBodyBuffer != 64<<10 || c.WorkerConnections != 100 || c.RlimitNofile != 0 ||
		c.LargeHeaderBuffers != [2]int64{2, 16 << 10} {
		t.Errorf("got %+v", c)
	}
	if err := keyIndex["nginx_proxy_send_timeout"].set(&c, "0"); err == nil {
		t.Errorf("got no error for a zero send timeout, want one")
	}
	for _, bad := range []string{"8k", "0 8k", "4 8q", "16 8k"} {
		if err := keyIndex["nginx_proxy_large_client_header_buffers"].set(&c, bad); err == nil {
			t.Errorf("got no error for large_client_header_buffers %q, want one", bad)
		}
	}
	if err := keyIndex["nginx_events_worker_connections"].set(&c, "none"); err == nil {
		t.Errorf("got no error for worker connections none, want one")
	}
}
