package main

import (
	"bufio"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// How many Ps (GOMAXPROCS) `grapevine start` runs, unless GOMAXPROCS is
// set. The README's "Tail latency" section has the measurements.
//
// On CPUs shared with other processes (the load, the upstream, neighbours)
// the kernel preempts the proxy's threads while they hold a P, and the
// goroutines queued on that P wait until the thread runs again: with
// more Ps than CPUs the others take that work. Three per CPU gave the best
// p99 on two shared cores (one per CPU: 1.9x nginx's p99; three: 0.95x).
//
// Under a CPU quota (a container's CPU limit, a CFS bandwidth limit) the
// opposite holds: every P's thread burns the quota, and once it is spent
// the kernel stops them all until the next period, tens of milliseconds.
// A container limited to 1 CPU served 1.24x nginx's throughput at 0.5x
// its p99 with one P, and 0.65x at 1.85x with six. There the quota,
// rounded up, is the count: at least 1, where Go's own default is at
// least 2.
//
// On a large dedicated host (16 cores, measured on paper only) the extra
// Ps cover threads preempted by the kernel's own work and the few other
// processes there; that does not grow with the core count, while each
// idle P's thread spins looking for work. So the surplus stops at
// maxExtraProcs.
const (
	procsPerCore  = 3
	maxExtraProcs = 8
)

// startProcs is the GOMAXPROCS `grapevine start` sets: from the CPUs
// this process may run on (its affinity mask, as Go counts them) and the
// CPU quota of its cgroup (0 when there is none).
func startProcs(cpus int, quota float64) int {
	cpus = max(cpus, 1)
	if quota > 0 {
		return max(1, min(cpus, int(math.Ceil(quota))))
	}
	return cpus + min((procsPerCore-1)*cpus, maxExtraProcs)
}

// cgroupCPUQuota is the CPU limit of the cgroup this process runs in, in
// CPUs (quota over period; the lowest along the way to the root), or 0
// when none is set or it cannot be read. It reads cgroup v2's cpu.max and
// v1's cpu.cfs_quota_us and cpu.cfs_period_us.
func cgroupCPUQuota() float64 {
	paths, err := cgroupCPUPaths("/proc/self/cgroup")
	if err != nil {
		return 0
	}
	lowest := 0.0
	for _, dir := range paths {
		for d := dir; ; d = filepath.Dir(d) {
			if q := readQuota(d); q > 0 && (lowest == 0 || q < lowest) {
				lowest = q
			}
			if d == "/sys/fs/cgroup" || d == "/sys/fs/cgroup/cpu" || d == "/sys/fs/cgroup/cpu,cpuacct" || d == "/" {
				break
			}
		}
	}
	return lowest
}

// cgroupCPUPaths lists the folders where this process's CPU limits may
// be: its v2 cgroup, and its v1 cgroup under the cpu controller's mounts.
func cgroupCPUPaths(selfCgroup string) ([]string, error) {
	f, err := os.Open(selfCgroup)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var paths []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			paths = append(paths, filepath.Join("/sys/fs/cgroup", parts[2]))
		case hasController(parts[1], "cpu"):
			for _, mount := range []string{"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"} {
				paths = append(paths, filepath.Join(mount, parts[2]))
			}
		}
	}
	return paths, sc.Err()
}

func hasController(list, name string) bool {
	for _, c := range strings.Split(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}

// readQuota reads one cgroup folder's CPU limit in CPUs, 0 for none.
func readQuota(dir string) float64 {
	if b, err := os.ReadFile(filepath.Join(dir, "cpu.max")); err == nil {
		return parseCPUMax(string(b))
	}
	quota, err1 := os.ReadFile(filepath.Join(dir, "cpu.cfs_quota_us"))
	period, err2 := os.ReadFile(filepath.Join(dir, "cpu.cfs_period_us"))
	if err1 != nil || err2 != nil {
		return 0
	}
	return ratio(strings.TrimSpace(string(quota)), strings.TrimSpace(string(period)))
}

// parseCPUMax reads cgroup v2's "QUOTA PERIOD" ("max PERIOD": no limit).
func parseCPUMax(s string) float64 {
	fields := strings.Fields(s)
	if len(fields) != 2 {
		return 0
	}
	return ratio(fields[0], fields[1])
}

// ratio is quota/period in CPUs; 0 for "max", -1 (v1's no limit) or junk.
func ratio(quota, period string) float64 {
	q, err1 := strconv.ParseFloat(quota, 64)
	p, err2 := strconv.ParseFloat(period, 64)
	if err1 != nil || err2 != nil || q <= 0 || p <= 0 {
		return 0
	}
	return q / p
}
