package plugins

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/grapevine-gw/grapevine/internal/testutil"
)

// readLines waits until path holds n lines and returns them.
func readLines(t *testing.T, path string, n int) []string {
	t.Helper()
	var lines []string
	testutil.Eventually(t, 10*time.Second, func() error {
		data, _ := os.ReadFile(path)
		lines = strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
		if len(data) == 0 || len(lines) < n {
			return fmt.Errorf("got %d lines in %s, want %d", len(lines), path, n)
		}
		return nil
	})
	return lines
}

// TestFileLog follows kong/plugins/file-log/handler.lua (3.9): one JSON
// line per request, the kong.log.serialize record, appended to path; with
// reopen the file is opened for each write, so a rotated file (moved
// away) is created again.
func TestFileLog(t *testing.T) {
	tests := []struct {
		name   string
		reopen bool
	}{
		{"kept open", false},
		{"reopen", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "access.log")
			h := newHarness(t)
			t.Cleanup(h.env.Close)
			h.plugin(fmt.Sprintf(`{"name":"file-log","config":{"path":%q,"reopen":%t}}`, path, tc.reopen))
			h.do("GET", "/r/one", "")
			h.do("GET", "/r/two", "")
			lines := readLines(t, path, 2)
			for i, want := range []string{"/r/one", "/r/two"} {
				var rec struct {
					Request  struct{ URI string }
					Response struct{ Status int }
				}
				if err := json.Unmarshal([]byte(lines[i]), &rec); err != nil {
					t.Fatalf("line %d %q: %v", i, lines[i], err)
				}
				if rec.Request.URI != want || rec.Response.Status != 200 {
					t.Errorf("line %d: got %s %d, want %s 200", i, rec.Request.URI, rec.Response.Status, want)
				}
			}
			if !tc.reopen {
				return
			}
			if err := os.Rename(path, path+".1"); err != nil {
				t.Fatal(err)
			}
			h.do("GET", "/r/three", "")
			if lines := readLines(t, path, 1); !strings.Contains(lines[0], `"/r/three"`) {
				t.Errorf("got %q in the new file, want the third request", lines[0])
			}
		})
	}
}
