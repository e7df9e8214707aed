package main

import (
	"bytes"
	"strings"
	"testing"
)

// An import's progress: a plain line at each tenth reached when not on a
// terminal, a bar redrawn in place on one.
func TestImportProgress(t *testing.T) {
	tests := []struct {
		name    string
		tty     bool
		reports [][2]int // sent, total
		want    string
	}{
		{"plain: a line per tenth, none repeated", false, [][2]int{{0, 50}, {4, 50}, {5, 50}, {30, 50}, {50, 50}},
			"imported 0 of 50 entities (0%)\nimported 5 of 50 entities (10%)\nimported 30 of 50 entities (60%)\nimported 50 of 50 entities (100%)\n"},
		{"plain: nothing for an empty import", false, [][2]int{{0, 0}}, ""},
		{"terminal: redrawn in place, the line ended once", true, [][2]int{{15, 30}, {30, 30}},
			"\r[===============               ]  50% 15/30 entities\r[==============================] 100% 30/30 entities\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			p := newImportProgress(&out)
			p.tty = tt.tty
			for _, r := range tt.reports {
				p.report(r[0], r[1])
			}
			p.done()
			if got := out.String(); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
	if isTerminal(&strings.Builder{}) {
		t.Error("a strings.Builder counts as a terminal")
	}
}
