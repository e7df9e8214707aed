package main

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// importProgress shows how far `config db_import` has sent its rows: on a
// terminal a bar redrawn in place, elsewhere (a log, a CI job) a plain line
// at each tenth, so that a large import is seen moving either way.
type importProgress struct {
	out       io.Writer
	tty       bool
	lastTenth int // the last tenth a plain line was written for
	drawn     bool
}

func newImportProgress(out io.Writer) *importProgress {
	return &importProgress{out: out, tty: isTerminal(out), lastTenth: -1}
}

// isTerminal reports whether out is a character device (a terminal).
func isTerminal(out io.Writer) bool {
	f, ok := out.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}

const barWidth = 30

// report is a store.Progress: sent rows of total.
func (p *importProgress) report(sent, total int) {
	if total <= 0 {
		return
	}
	percent := sent * 100 / total
	if p.tty {
		filled := sent * barWidth / total
		fmt.Fprintf(p.out, "\r[%s%s] %3d%% %d/%d entities", strings.Repeat("=", filled), strings.Repeat(" ", barWidth-filled), percent, sent, total)
		p.drawn = true
		return
	}
	if tenth := percent / 10; tenth > p.lastTenth {
		p.lastTenth = tenth
		fmt.Fprintf(p.out, "imported %d of %d entities (%d%%)\n", sent, total, percent)
	}
}

// done ends the bar's line, so what follows starts on a line of its own.
func (p *importProgress) done() {
	if p.drawn {
		fmt.Fprintln(p.out)
		p.drawn = false
	}
}
