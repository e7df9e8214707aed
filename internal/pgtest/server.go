package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// server is one running postmaster and the folder it lives in.
type server struct {
	host    string
	port    int
	root    string // temp folder: data/, sock/, server.log, owner.pid
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the postmaster has exited
	waitErr error         // set before exited is closed
}

// owner is the OS user postgres runs as: nil means the current user.
type owner struct{ uid, gid int }

func (o *owner) sysProcAttr() *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{Setpgid: true}
	if o != nil {
		attr.Credential = &syscall.Credential{Uid: uint32(o.uid), Gid: uint32(o.gid)}
	}
	return attr
}

// startServer runs initdb in a new temp folder and starts postgres on a free
// port, retrying with another port if the one picked was taken meanwhile.
func startServer(ctx context.Context) (*server, error) {
	bin, own, root, err := prepare(ctx)
	if err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		s, err := launch(ctx, bin, root, own, 0, false)
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	dumpLog(filepath.Join(root, "server.log"))
	os.RemoveAll(root)
	return nil, lastErr
}

// prepare finds the binaries and the OS user, and runs initdb in a new
// temp folder.
func prepare(ctx context.Context) (bin string, own *owner, root string, err error) {
	if bin, err = binDir(); err != nil {
		return "", nil, "", err
	}
	if own, err = runAs(); err != nil {
		return "", nil, "", err
	}
	removeStale(own)
	if root, err = makeRoot(own); err != nil {
		return "", nil, "", err
	}
	if err := initdb(ctx, bin, root, own); err != nil {
		os.RemoveAll(root)
		return "", nil, "", err
	}
	return bin, own, root, nil
}

// binDir finds the folder holding initdb and postgres.
func binDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	// Newest major version first: "9" must not sort above "15".
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, dir := range dirs {
		if isExecutable(filepath.Join(dir, "initdb")) && isExecutable(filepath.Join(dir, "postgres")) {
			return dir, nil
		}
	}
	if path, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(path), nil
	}
	return "", errors.New("PostgreSQL server binaries (initdb, postgres) not found in /usr/lib/postgresql/*/bin or PATH; install them with `apt-get install postgresql`")
}

func versionOf(dir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(dir)), 64)
	return v
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// runAs returns the postgres OS user when running as root (postgres refuses
// to run as root), nil otherwise.
func runAs() (*owner, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root needs the 'postgres' OS user to run the server: %w", err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return nil, fmt.Errorf("parse uid of postgres user: %w", err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return nil, fmt.Errorf("parse gid of postgres user: %w", err)
	}
	return &owner{uid: uid, gid: gid}, nil
}

// makeRoot creates the server's folder, traversable by the postgres user,
// and records our pid so that a later run can remove it if we die.
func makeRoot(own *owner) (string, error) {
	root, err := os.MkdirTemp(baseDir(own), "pgtest-")
	if err != nil {
		return "", fmt.Errorf("create temp folder: %w", err)
	}
	if err := os.Chmod(root, 0o755); err != nil {
		return "", fmt.Errorf("chmod temp folder: %w", err)
	}
	pid := []byte(strconv.Itoa(os.Getpid()))
	if err := os.WriteFile(filepath.Join(root, "owner.pid"), pid, 0o644); err != nil {
		return "", fmt.Errorf("write owner.pid: %w", err)
	}
	for _, sub := range []string{"data", "sock"} {
		dir := filepath.Join(root, sub)
		if err := os.Mkdir(dir, 0o700); err != nil {
			return "", fmt.Errorf("create %s: %w", dir, err)
		}
		if own != nil {
			if err := os.Chown(dir, own.uid, own.gid); err != nil {
				return "", fmt.Errorf("chown %s to postgres: %w", dir, err)
			}
		}
	}
	return root, nil
}

// baseDir is os.TempDir(), or /tmp when postgres running as another user
// could not reach a folder under it (say TMPDIR=/root/tmp).
func baseDir(own *owner) string {
	dir := os.TempDir()
	if own == nil {
		return dir
	}
	for d := dir; ; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm()&0o001 == 0 {
			return "/tmp"
		}
		if d == filepath.Dir(d) {
			return dir
		}
	}
}

// removeStale deletes folders left by test binaries that died without
// cleaning up (SIGKILL, timeouts). Their postmasters are already gone: each
// one is started with a parent-death signal.
func removeStale(own *owner) {
	roots, _ := filepath.Glob(filepath.Join(baseDir(own), "pgtest-*"))
	for _, root := range roots {
		b, err := os.ReadFile(filepath.Join(root, "owner.pid"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || processAlive(pid) {
			continue
		}
		os.RemoveAll(root)
	}
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// initdb creates the cluster with a trusted superuser named User.
func initdb(ctx context.Context, bin, root string, own *owner) error {
	logPath := filepath.Join(root, "initdb.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("create initdb log: %w", err)
	}
	defer logFile.Close()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "initdb"),
		"-D", filepath.Join(root, "data"), "-U", User, "--auth=trust",
		"-E", "UTF8", "--locale=C", "--no-sync")
	cmd.Dir = root
	cmd.Env = serverEnv()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = own.sysProcAttr()
	if err := cmd.Run(); err != nil {
		dumpLog(logPath)
		return fmt.Errorf("initdb: %w (log above, from %s)", err, logPath)
	}
	return nil
}

func serverEnv() []string {
	return []string{"PATH=/usr/bin:/bin", "LC_ALL=C", "LANG=C", "TZ=UTC"}
}

// launch starts postgres on port (0: a free one) and waits until it
// accepts connections. Unless durable, commits return before their WAL is
// written (fast, but an immediate shutdown loses the last ones). The postmaster runs in its own process group (a ^C
// aimed at the test does not race our shutdown) and gets SIGQUIT,
// postgres's immediate shutdown, when the test binary dies.
func launch(ctx context.Context, bin, root string, own *owner, port int, durable bool) (*server, error) {
	if port == 0 {
		var err error
		if port, err = freePort(); err != nil {
			return nil, err
		}
	}
	logFile, err := os.OpenFile(filepath.Join(root, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open server log: %w", err)
	}
	defer logFile.Close() // the child holds its own copy
	syncCommit := "off"
	if durable {
		syncCommit = "on"
	}
	cmd := exec.Command(filepath.Join(bin, "postgres"),
		"-D", filepath.Join(root, "data"),
		"-h", "127.0.0.1", "-p", strconv.Itoa(port), "-k", filepath.Join(root, "sock"),
		"-c", "fsync=off", "-c", "synchronous_commit="+syncCommit, "-c", "full_page_writes=off",
		"-c", "max_connections=300", "-c", "shared_buffers=32MB")
	cmd.Dir = root
	cmd.Env = serverEnv()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = own.sysProcAttr()
	cmd.SysProcAttr.Pdeathsig = syscall.SIGQUIT
	s := &server{host: "127.0.0.1", port: port, root: root, cmd: cmd, exited: make(chan struct{})}
	if err := s.startLocked(); err != nil {
		return nil, err
	}
	if err := s.waitReady(ctx); err != nil {
		s.kill()
		return nil, err
	}
	return s, nil
}

// startLocked starts the postmaster from a goroutine locked to its OS thread
// for the postmaster's whole life: the parent-death signal fires when the
// forking thread exits, so that thread must outlive the postmaster.
func (s *server) startLocked() error {
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := s.cmd.Start(); err != nil {
			started <- fmt.Errorf("start postgres: %w", err)
			runtime.UnlockOSThread()
			return
		}
		started <- nil
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	return <-started
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitReady polls until the server accepts a connection, exits or ctx ends.
func (s *server) waitReady(ctx context.Context) error {
	url := dsn(s.host, s.port, "postgres")
	for {
		attemptCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(attemptCtx, url)
		cancel()
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("postgres exited during start-up (%v); see %s", s.waitErr, filepath.Join(s.root, "server.log"))
		case <-ctx.Done():
			return fmt.Errorf("postgres not accepting connections on port %d: %w (last error: %v)", s.port, ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop shuts the server down at once (the data is throwaway) and removes its
// folder.
func (s *server) stop() {
	s.kill()
	if err := os.RemoveAll(s.root); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: remove %s: %v\n", s.root, err)
	}
}

// kill sends SIGQUIT (immediate shutdown), waits, then SIGKILLs the process
// group if the server still runs.
func (s *server) kill() {
	_ = s.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-s.exited:
		return
	case <-time.After(10 * time.Second):
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		fmt.Fprintf(os.Stderr, "pgtest: postgres (pid %d) did not exit\n", s.cmd.Process.Pid)
	}
}

// dumpLog copies a log file to stderr; used only when something failed.
func dumpLog(path string) {
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return
	}
	fmt.Fprintf(os.Stderr, "pgtest: --- %s ---\n%s\n", path, b)
}
