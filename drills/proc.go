package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Process is one real program of a drill (bin/cloud, bin/devsim,
// bin/edge-agent, clickhouse-server) with its output in a log file. It can
// be stopped, killed with SIGKILL, frozen and started again with the same
// arguments.
type Process struct {
	name    string
	bin     string
	args    []string
	env     []string
	logPath string

	cmd  *exec.Cmd
	done chan struct{} // closed when the current run exited
	err  error         // the current run's exit status, after done
	runs int
}

func newProcess(name, bin string, args []string, env []string, logPath string) *Process {
	return &Process{name: name, bin: bin, args: args, env: env, logPath: logPath}
}

// Start runs the program (again). Output of every run is appended to the
// log file.
func (p *Process) Start() error {
	if p.Running() {
		return fmt.Errorf("cannot start %s: already running (pid %d)", p.name, p.cmd.Process.Pid)
	}
	out, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("cannot open log of %s: %w", p.name, err)
	}
	p.runs++
	fmt.Fprintf(out, "==== %s start %d: %s %s ====\n", time.Now().UTC().Format(time.RFC3339Nano), p.runs, p.bin, strings.Join(p.args, " "))
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = out, out
	// Own process group: a Ctrl-C on the terminal reaches the drills
	// program, which stops its processes in order, not every child at once.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("cannot start %s (%q): %w", p.name, p.bin, err)
	}
	done := make(chan struct{})
	p.cmd, p.done = cmd, done
	go func() {
		p.err = cmd.Wait()
		out.Close()
		close(done)
	}()
	return nil
}

// Running reports whether the current run has not exited.
func (p *Process) Running() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Exited returns a channel closed when the current run exits (nil before
// the first start).
func (p *Process) Exited() <-chan struct{} { return p.done }

// ExitErr describes how the last run ended.
func (p *Process) ExitErr() error {
	if p.Running() || p.cmd == nil {
		return nil
	}
	return p.err
}

// Pid is the current run's process id (0 when not started).
func (p *Process) Pid() int {
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

func (p *Process) signal(sig syscall.Signal) error {
	if !p.Running() {
		return fmt.Errorf("cannot signal %s: not running", p.name)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("cannot send %s to %s (pid %d): %w", sig, p.name, p.cmd.Process.Pid, err)
	}
	return nil
}

// Kill sends SIGKILL and waits until the process is gone.
func (p *Process) Kill() error {
	if err := p.signal(syscall.SIGKILL); err != nil {
		return err
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("cannot kill %s (pid %d): still running 10s after SIGKILL", p.name, p.Pid())
	}
}

// Stop sends SIGTERM (after SIGCONT, in case it is frozen), waits up to
// grace for the exit, then kills it. Stopping a process that is not
// running does nothing.
func (p *Process) Stop(grace time.Duration) error {
	if !p.Running() {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("cannot stop %s: %w", p.name, err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
	}
	if err := p.Kill(); err != nil {
		return err
	}
	return fmt.Errorf("%s (pid %d) did not exit within %s of SIGTERM and was killed", p.name, p.Pid(), grace)
}

// Freeze stops the process (SIGSTOP) without ending it; Thaw resumes it.
func (p *Process) Freeze() error { return p.signal(syscall.SIGSTOP) }

// Thaw resumes a frozen process.
func (p *Process) Thaw() error { return p.signal(syscall.SIGCONT) }

// LogTail returns the last n lines of the process's log.
func (p *Process) LogTail(n int) string {
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// childEnv is the environment of the drill's processes: the drills
// program's own, without the variables that would point a process
// elsewhere than its generated configuration says (CLICKHOUSE_*,
// PLANTROOM_MQTT_PASSWORD).
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "CLICKHOUSE_") || strings.HasPrefix(kv, "PLANTROOM_MQTT_PASSWORD=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// binary finds a program in the bin directory.
func binary(dir, name string) (string, error) {
	p, err := filepath.Abs(filepath.Join(dir, name))
	if err != nil {
		return "", fmt.Errorf("cannot find %q: %w", name, err)
	}
	st, err := os.Stat(p)
	if err != nil {
		return "", fmt.Errorf("cannot find %q (run make build): %w", p, err)
	}
	if st.Mode()&0o111 == 0 {
		return "", fmt.Errorf("cannot run %q: not executable", p)
	}
	return p, nil
}
