// Package main is the hostile-client benchmark behind scripts/bench-hostile.
// It is not shipped. Two subcommands:
//
//	hostile upstream -listen ADDR   an upstream with a fast answer, a 512 MiB
//	                                body and an endless chunked body
//	hostile attack -pid PID ...     floods a running node's proxy and Admin
//	                                API, one attack after another, and reports
//	                                the node's RSS and descriptors before, at
//	                                the peak during and after each, whether an
//	                                ordinary request was served, and /status
//
// The node is a real `grapevine start` process the script started; this
// program only reads its /proc entries and talks to it over loopback.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/rs/zerolog"
)

// report is where the figures go: the benchmark's output, not its log.
var report io.Writer = os.Stdout

func main() {
	log := zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, NoColor: true}).With().Timestamp().Logger()
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: hostile upstream|attack [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "upstream":
		err = runUpstream(os.Args[2:], log)
	case "attack":
		err = runAttacks(os.Args[2:], log)
	default:
		fmt.Fprintf(os.Stderr, "hostile: unknown subcommand %q (want upstream or attack)\n", os.Args[1])
		os.Exit(2)
	}
	if err != nil {
		log.Error().Err(err).Msg("hostile " + os.Args[1] + " failed")
		os.Exit(1)
	}
}
