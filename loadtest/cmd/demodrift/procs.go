package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// proc is one service process of the demo.
type proc struct {
	name, log   string
	admin, grpc string
	cmd         *exec.Cmd
	done        chan error
}

// freeAddr returns a loopback address with a port nobody listens on right now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// start runs bin/<binary> as name with free admin (and gRPC) ports and waits until it is ready.
func (d *demo) start(ctx context.Context, name, binary string, grpc bool, args ...string) (*proc, error) {
	p := &proc{name: name, log: filepath.Join(d.logDir, name+".log"), done: make(chan error, 1)}
	var err error
	if p.admin, err = freeAddr(); err != nil {
		return nil, err
	}
	args = append([]string{"-admin.addr", p.admin}, args...)
	if grpc {
		if p.grpc, err = freeAddr(); err != nil {
			return nil, err
		}
		args = append(args, "-grpc.addr", p.grpc)
	}
	logf, err := os.Create(p.log)
	if err != nil {
		return nil, err
	}
	p.cmd = exec.Command(filepath.Join(d.o.bin, binary), args...)
	p.cmd.Env = append(os.Environ(), "KAFKA_BROKERS="+d.o.brokers, "ES_URL="+d.o.esURL, "REDIS_ADDR="+d.o.redisAddr,
		"MLFLOW_URL="+d.o.mlflow, "LIGHTGBM_LIB="+d.o.lgbLib, "LOG_LEVEL=info",
		"MLOPS_DEV=1") // the local demo's trainer runs without an admin credential
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s (run make build first): %w", name, err)
	}
	go func() { p.done <- p.cmd.Wait(); logf.Close() }()
	d.procs = append(d.procs, p)
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if resp, err := client.Get("http://" + p.admin + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		select {
		case err := <-p.done:
			p.done <- err
			return nil, fmt.Errorf("%s exited before it was ready (%w); see %s", name, err, p.log)
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s not ready after 2 minutes; see %s", name, p.log)
		}
	}
}

// stop sends SIGTERM and waits up to 30 s, then kills.
func (p *proc) stop() {
	select {
	case err := <-p.done:
		p.done <- err
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
	}
}

func (d *demo) stopAll() {
	for i := len(d.procs) - 1; i >= 0; i-- {
		d.procs[i].stop()
	}
}
