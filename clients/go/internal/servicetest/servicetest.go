// Package servicetest runs a real handshaker service for the Go packages'
// tests: it finds the service binary, runs `handshaker keys` verbs on a
// keystore and starts `handshaker serve` on it. It is internal: only this
// module's tests use it.
package servicetest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// Binary is $HANDSHAKER_BIN, else the project venv's handshaker
// (../../.venv/bin/handshaker from the Go module root).
func Binary() (string, error) {
	if bin := os.Getenv("HANDSHAKER_BIN"); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			return "", fmt.Errorf("HANDSHAKER_BIN=%s: %w", bin, err)
		}
		return bin, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the test directory")
		}
		dir = parent
	}
	bin := filepath.Join(dir, "..", "..", ".venv", "bin", "handshaker")
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("no handshaker service binary at %s (create the project venv with `pip install -e .` or set HANDSHAKER_BIN)", filepath.Clean(bin))
	}
	return bin, nil
}

// Keys runs `handshaker keys ARGS... --keystore KEYSTORE`.
func Keys(bin, keystore string, args ...string) error {
	args = append(append([]string{"keys"}, args...), "--keystore", keystore)
	if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s %v: %w\n%s", bin, args, err, out)
	}
	return nil
}

// FreeAddr is a loopback TCP address that was free a moment ago.
func FreeAddr() (string, error) {
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer probe.Close()
	return probe.Addr().String(), nil
}

// Serve runs `handshaker serve` on a keystore until stop is called; it
// returns once the service accepts connections at network/addr.
func Serve(bin, keystore, network, addr string) (stop func(), err error) {
	stop, _, err = ServeProcess(bin, keystore, network, addr)
	return stop, err
}

// ServeProcess is Serve that also returns the service's process, for tests
// that pause or kill it; stop still waits for it to exit.
func ServeProcess(bin, keystore, network, addr string) (stop func(), process *os.Process, err error) {
	listen := addr
	if network == "unix" {
		listen = "unix:" + addr
	}
	var log bytes.Buffer
	cmd := exec.Command(bin, "serve", "--listen", listen, "--keystore", keystore)
	cmd.Stdout = &log
	cmd.Stderr = &log
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop = func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := net.DialTimeout(network, addr, time.Second)
		if err == nil {
			conn.Close()
			return stop, cmd.Process, nil
		}
		select {
		case err := <-exited:
			exited <- err
			stop()
			return nil, nil, fmt.Errorf("the service exited (%v):\n%s", err, log.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			return nil, nil, fmt.Errorf("the service did not listen on %s within 30s:\n%s", listen, log.String())
		}
	}
}
