package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/grapevine-gw/grapevine/internal/listen"
	"github.com/grapevine-gw/grapevine/node"
)

// An in-place restart (SIGUSR2, as nginx's binary upgrade) starts the
// binary on disk again with the same arguments and hands it the node's
// listening sockets. The new process builds its snapshot and serves on
// those very sockets; only then does the old one leave the cluster and
// drain. No connection is refused meanwhile: the sockets never close.

// envReadyFD names the descriptor on which a node started by a handover
// says, with one line, that its proxy serves.
const envReadyFD = "HANDOVER_READY_FD"

// handoverTimeout bounds the wait for the new process to serve; past it,
// the new process is stopped and the old one goes on serving.
const handoverTimeout = 60 * time.Second

// handover starts the successor and returns its process id once it serves.
func handover(sockets *listen.Sockets) (int, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("finding the binary: %w", err)
	}
	files, env, err := sockets.Handover(3)
	if err != nil {
		return 0, err
	}
	defer closeFiles(files)
	r, w, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("readiness pipe: %w", err)
	}
	defer r.Close()
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Env = append(withoutHandoverEnv(os.Environ()), env, envReadyFD+"="+strconv.Itoa(3+len(files)))
	cmd.ExtraFiles = append(files, w)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, os.Stdout, os.Stderr
	err = cmd.Start()
	w.Close() // the successor has its copy; EOF means it ended
	if err != nil {
		return 0, fmt.Errorf("starting %s: %w", exe, err)
	}
	go cmd.Wait() //nolint:errcheck // reaps the successor should it end while this process lives
	ready := make(chan error, 1)
	go func() { ready <- awaitReady(r) }()
	select {
	case err = <-ready:
	case <-time.After(handoverTimeout):
		err = fmt.Errorf("it did not serve within %v", handoverTimeout)
	}
	if err != nil {
		_ = cmd.Process.Kill()
		return 0, fmt.Errorf("successor (pid %d): %w", cmd.Process.Pid, err)
	}
	return cmd.Process.Pid, nil
}

// awaitReady reads the successor's readiness line.
func awaitReady(r *os.File) error {
	line, err := bufio.NewReader(r).ReadString('\n')
	if line == "ready\n" {
		return nil
	}
	if err != nil {
		return errors.New("it ended before serving (see its log lines above)")
	}
	return fmt.Errorf("unexpected readiness line %q", line)
}

// withoutHandoverEnv drops what a handover passed to this process, which
// its successor gets anew.
func withoutHandoverEnv(environ []string) []string {
	out := environ[:0:0]
	for _, kv := range environ {
		if strings.HasPrefix(kv, listen.EnvInherited+"=") || strings.HasPrefix(kv, envReadyFD+"=") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func closeFiles(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// reportReadiness makes n tell the process that started it by a handover,
// if one did, that its proxy serves.
func reportReadiness(n *node.Node, log zerolog.Logger) {
	text := os.Getenv(envReadyFD)
	if text == "" {
		return
	}
	fd, err := strconv.Atoi(text)
	if err != nil || fd < 3 {
		log.Warn().Str(envReadyFD, text).Msg("ignoring a readiness descriptor that is not one")
		return
	}
	f := os.NewFile(uintptr(fd), "readiness")
	n.OnProxyServing(func() {
		if _, err := f.WriteString("ready\n"); err != nil {
			log.Warn().Err(err).Msg("could not tell the node this one replaces that it serves")
		}
		f.Close()
	})
}
