package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Memory and CPU figures come from Linux's /proc (proc(5)).

// userHZ is the unit of the CPU times in /proc/<pid>/stat: clock ticks of
// USER_HZ, which the kernel fixes at 100 for user space on every
// architecture Go supports on Linux (sysconf(_SC_CLK_TCK)).
const userHZ = 100

// resetPeakRSS resets each process's peak resident set size (VmHWM) to its
// current one, by writing 5 to /proc/<pid>/clear_refs (Linux ≥ 4.0).
func resetPeakRSS(pids []int) error {
	var errs []error
	for _, pid := range pids {
		if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
			errs = append(errs, fmt.Errorf("resetting the peak RSS of pid %d: %w", pid, err))
		}
	}
	return errors.Join(errs...)
}

// peakRSS is the sum of the processes' peak resident set sizes (VmHWM),
// in bytes, since they started or since resetPeakRSS.
func peakRSS(pids []int) (int64, error) {
	return sumStatus(pids, "VmHWM")
}

// currentRSS is the sum of the processes' resident set sizes (VmRSS), in
// bytes.
func currentRSS(pids []int) (int64, error) {
	return sumStatus(pids, "VmRSS")
}

// sumStatus adds up a "Field:  123 kB" line of /proc/<pid>/status over pids.
func sumStatus(pids []int, field string) (int64, error) {
	var total int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return 0, err
		}
		found := false
		for line := range bytes.Lines(b) {
			rest, ok := bytes.CutPrefix(line, []byte(field+":"))
			if !ok {
				continue
			}
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(string(rest)), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("pid %d: parsing %s: %w", pid, bytes.TrimSpace(line), err)
			}
			total += kb << 10
			found = true
			break
		}
		if !found {
			return 0, fmt.Errorf("pid %d: no %s in /proc/%d/status", pid, field, pid)
		}
	}
	return total, nil
}

// procStat holds the fields of /proc/<pid>/stat that the kit uses.
type procStat struct {
	ppid int
	cpu  time.Duration // user + system time, all threads
}

// readStat parses /proc/<pid>/stat. The command name, field 2, is in
// parentheses and may itself contain spaces and parentheses, so fields are
// counted from the last ')'.
func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("pid %d: malformed stat", pid)
	}
	// After ")": state(3) ppid(4) ... utime(14) stime(15).
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return procStat{}, fmt.Errorf("pid %d: short stat", pid)
	}
	ppid, err1 := strconv.Atoi(f[1])
	utime, err2 := strconv.ParseInt(f[11], 10, 64)
	stime, err3 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return procStat{}, fmt.Errorf("pid %d: parsing stat: %w", pid, err)
	}
	return procStat{ppid: ppid, cpu: time.Duration(utime+stime) * time.Second / userHZ}, nil
}

// cpuTime is the CPU time the processes have used so far; processes that
// are gone count as zero.
func cpuTime(pids []int) time.Duration {
	var total time.Duration
	for _, pid := range pids {
		if st, err := readStat(pid); err == nil {
			total += st.cpu
		}
	}
	return total
}

// childPIDs lists the processes whose parent is ppid, such as nginx's
// workers.
func childPIDs(ppid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readStat(pid); err == nil && st.ppid == ppid {
			pids = append(pids, pid)
		}
	}
	return pids
}

// machineBusy is the CPU time that all cores together have spent running
// processes since boot, from the first line of /proc/stat: user, nice and
// system time (guest time is already part of user time), plus steal, as
// time taken by other virtual machines is time this one did not get. Time
// in interrupts, such as the softirqs that carry loopback traffic, is left
// out: with IRQ time accounting it is charged to no process, so it would
// look like someone else's load. It is 0 if /proc/stat cannot be read.
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var ticks int64
	for i, s := range f[1:9] { // user nice system idle iowait irq softirq steal
		if i >= 3 && i <= 6 {
			continue
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / userHZ
}
