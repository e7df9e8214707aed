package main

import (
	"os"
	"path/filepath"
	"testing"
)

// The Ps `grapevine start` runs: three per CPU on shared CPUs, with the
// surplus capped on large hosts; the quota, rounded up, under a CPU limit.
func TestStartProcs(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cpus  int
		quota float64
		want  int
	}{
		{"one CPU, no limit", 1, 0, 3},
		{"two shared CPUs", 2, 0, 6},
		{"four CPUs", 4, 0, 12},
		{"16-core host: the surplus stops at 8", 16, 0, 24},
		{"container limited to 1 CPU on 2", 2, 1, 1},
		{"container limited to half a CPU", 2, 0.5, 1},
		{"container limited to 2.5 CPUs of 16", 16, 2.5, 3},
		{"a quota above the CPUs there are", 2, 8, 2},
		{"nonsense CPU count", 0, 0, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := startProcs(tc.cpus, tc.quota); got != tc.want {
				t.Fatalf("got %d Ps, want %d", got, tc.want)
			}
		})
	}
}

func TestParseCPUMax(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want float64
	}{
		{"max 100000\n", 0},
		{"100000 100000\n", 1},
		{"150000 100000", 1.5},
		{"50000 100000", 0.5},
		{"-1 100000", 0},
		{"junk", 0},
		{"", 0},
	} {
		if got := parseCPUMax(tc.in); got != tc.want {
			t.Errorf("parseCPUMax(%q): got %v, want %v", tc.in, got, tc.want)
		}
	}
}

// A cgroup folder's limit, in v2's and v1's files.
func TestReadQuota(t *testing.T) {
	write := func(t *testing.T, files map[string]string) string {
		dir := t.TempDir()
		for name, body := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  float64
	}{
		{"v2 limited", map[string]string{"cpu.max": "200000 100000\n"}, 2},
		{"v2 unlimited", map[string]string{"cpu.max": "max 100000\n"}, 0},
		{"v1 limited", map[string]string{"cpu.cfs_quota_us": "100000\n", "cpu.cfs_period_us": "100000\n"}, 1},
		{"v1 unlimited", map[string]string{"cpu.cfs_quota_us": "-1\n", "cpu.cfs_period_us": "100000\n"}, 0},
		{"v1 without its period", map[string]string{"cpu.cfs_quota_us": "100000\n"}, 0},
		{"no controller files", nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := readQuota(write(t, tc.files)); got != tc.want {
				t.Fatalf("got %v CPUs, want %v", got, tc.want)
			}
		})
	}
}

// Where the limits may be, from /proc/self/cgroup: v2's unified line, and
// v1's line with the cpu controller under both of its usual mounts.
func TestCgroupCPUPaths(t *testing.T) {
	self := filepath.Join(t.TempDir(), "cgroup")
	body := "12:memory:/box\n4:cpu,cpuacct:/box/app\n0::/unified/app\n"
	if err := os.WriteFile(self, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := cgroupCPUPaths(self)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/sys/fs/cgroup/cpu/box/app", "/sys/fs/cgroup/cpu,cpuacct/box/app", "/sys/fs/cgroup/unified/app"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	if _, err := cgroupCPUPaths(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("a missing /proc/self/cgroup gave no error")
	}
}
