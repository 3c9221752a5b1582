// Command loadgen measures server-role handshakes per second through the
// handshaker service, with crypto/tls as the TLS client peer over in-memory
// connections (net.Pipe), so that it takes little CPU from the service.
//
//	go run ./cmd/loadgen -addr 127.0.0.1:50099 -ca /tmp/lg-ks/dev-ca/ca.crt -api multiplex
//
// -api says how the server role talks to the service: stream (this module's
// handshaker.Server, a Handshake stream per connection), multiplex (the same
// with Config.Multiplex) or unary (StartServer, Feed and Abort relayed by
// hand). Every API uses one gRPC channel to -addr.
//
// It prints one JSON line: {"api", "handshakes", "seconds",
// "handshakes_per_s", "errors", "latencies_ms" (each handshake, start until
// both sides are done), "cpu_seconds" (user+sys of this process in the
// measured window), "group" (the key exchange group negotiated, IANA)}, and
// exits 1 when a handshake failed. crypto/tls keeps its defaults, so the
// group is X25519MLKEM768, as with the engine's own defaults.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/handshaker/handshaker/clients/go/gen/handshaker/v1"
	"github.com/handshaker/handshaker/clients/go/handshaker"
)

// handshakeTimeout bounds one handshake, so that a lost one counts as an
// error instead of stalling its worker.
const handshakeTimeout = 30 * time.Second

type report struct {
	API            string    `json:"api"`
	Handshakes     int       `json:"handshakes"`
	Seconds        float64   `json:"seconds"`
	HandshakesPerS float64   `json:"handshakes_per_s"`
	Errors         int       `json:"errors"`
	LatenciesMS    []float64 `json:"latencies_ms"`
	CPUSeconds     float64   `json:"cpu_seconds"`
	// Group is the key exchange group (IANA NamedGroup) crypto/tls negotiated.
	Group uint16 `json:"group"`
}

func main() {
	os.Exit(run())
}

func run() int {
	if os.Getenv("GOGC") == "" {
		// Each handshake leaves short-lived garbage behind; a larger heap target
		// trades memory for CPU, leaving more of the machine to the service.
		debug.SetGCPercent(400)
	}
	addr := flag.String("addr", "", "handshaker service address, host:port or unix:PATH (required)")
	caFile := flag.String("ca", "", "PEM file of the CA the crypto/tls client trusts (required)")
	serverName := flag.String("server-name", "localhost", "server name the crypto/tls client sends and checks")
	api := flag.String("api", "stream", "how the server role talks to the service: stream, unary or multiplex")
	concurrency := flag.Int("concurrency", 32, "handshakes in flight")
	conns := flag.Int("conns", 1, "gRPC connections to the service, the callers spread over them (a service with --workers spreads connections over its workers)")
	duration := flag.Duration("duration", 2*time.Second, "how long to measure")
	warmup := flag.Duration("warmup", 0, "how long to run first, unmeasured")
	rate := flag.Float64("rate", 0, "open loop: start this many handshakes per second, evenly spaced, whatever is in flight (latency counts from the scheduled start); 0: closed loop with -concurrency in flight")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the measured window to this file")
	version := flag.String("tls", "1.3", "the TLS version the crypto/tls clients speak: 1.3 or 1.2")
	flag.Parse()
	if *addr == "" || *caFile == "" || flag.NArg() > 0 || *concurrency < 1 || *conns < 1 || *duration <= 0 || *warmup < 0 || *rate < 0 {
		flag.Usage()
		return 2
	}
	pem, err := os.ReadFile(*caFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		return 2
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		fmt.Fprintf(os.Stderr, "loadgen: no certificate in %s\n", *caFile)
		return 2
	}
	serves := make([]func(context.Context, net.Conn) error, *conns)
	for i := range serves {
		cc, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			return 2
		}
		defer cc.Close()
		switch *api {
		case "stream", "multiplex":
			config := &handshaker.Config{Service: cc, Multiplex: *api == "multiplex"}
			serves[i] = func(ctx context.Context, conn net.Conn) error { return libraryServer(ctx, conn, config) }
		case "unary":
			client := pb.NewHandshakerClient(cc)
			serves[i] = func(ctx context.Context, conn net.Conn) error { return unaryServer(ctx, conn, client) }
		default:
			fmt.Fprintf(os.Stderr, "loadgen: -api %q: want stream, unary or multiplex\n", *api)
			return 2
		}
	}
	versions := map[string]uint16{"1.3": tls.VersionTLS13, "1.2": tls.VersionTLS12}
	tlsVersion, ok := versions[*version]
	if !ok {
		fmt.Fprintf(os.Stderr, "loadgen: -tls %q: want 1.3 or 1.2\n", *version)
		return 2
	}
	b := &bench{
		tls: &tls.Config{
			MinVersion: tlsVersion,
			MaxVersion: tlsVersion,
			RootCAs:    roots,
			ServerName: *serverName,
		},
		serves:      serves,
		concurrency: *concurrency,
		rate:        *rate,
	}

	if *warmup > 0 {
		if r := b.round(*warmup); r.errors > 0 {
			fmt.Fprintf(os.Stderr, "loadgen: %d of %d warm-up handshakes failed\n", r.errors, r.errors+len(r.latencies))
		}
	}
	if *cpuProfile != "" {
		file, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(file)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			return 2
		}
		defer file.Close()
	}
	cpuBefore := cpuSeconds()
	r := b.round(*duration)
	cpu := cpuSeconds() - cpuBefore
	if *cpuProfile != "" {
		pprof.StopCPUProfile()
	}

	out := report{
		API:         *api,
		Handshakes:  len(r.latencies),
		Seconds:     r.elapsed.Seconds(),
		Errors:      r.errors,
		LatenciesMS: make([]float64, len(r.latencies)),
		CPUSeconds:  cpu,
		Group:       uint16(b.group.Load()),
	}
	out.HandshakesPerS = float64(out.Handshakes) / out.Seconds
	for i, latency := range r.latencies {
		out.LatenciesMS[i] = math.Round(latency.Seconds()*1e5) / 100
	}
	line, err := json.Marshal(out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		return 1
	}
	fmt.Println(string(line))
	if r.errors > 0 || b.failed() {
		return 1
	}
	return 0
}

type bench struct {
	tls         *tls.Config
	serves      []func(context.Context, net.Conn) error // one per gRPC connection
	concurrency int
	rate        float64 // handshakes started per second in open loop; 0: closed loop

	mu       sync.Mutex
	reported int // error messages printed
	anyError bool
	group    atomic.Uint32 // the last negotiated key exchange group
}

type result struct {
	latencies []time.Duration
	errors    int
	elapsed   time.Duration
}

// round runs handshakes until d has passed, and waits for those in flight:
// closed loop on concurrency workers, or open loop at b.rate.
func (b *bench) round(d time.Duration) result {
	if b.rate > 0 {
		return b.pacedRound(d)
	}
	start := time.Now()
	deadline := start.Add(d)
	var (
		mu  sync.Mutex
		all result
		wg  sync.WaitGroup
	)
	for i := range b.concurrency {
		serve := b.serves[i%len(b.serves)]
		wg.Go(func() {
			var mine result
			for time.Now().Before(deadline) {
				latency, err := b.handshake(serve)
				if err != nil {
					mine.errors++
					b.reportError(err)
					continue
				}
				mine.latencies = append(mine.latencies, latency)
			}
			mu.Lock()
			all.latencies = append(all.latencies, mine.latencies...)
			all.errors += mine.errors
			mu.Unlock()
		})
	}
	wg.Wait()
	all.elapsed = time.Since(start)
	return all
}

// pacedRound starts one handshake every 1/rate seconds until d has passed, each
// on its own goroutine, so a slow service cannot slow the arrivals down (an open
// loop: queueing shows in the latency, measured from the scheduled start).
func (b *bench) pacedRound(d time.Duration) result {
	interval := time.Duration(float64(time.Second) / b.rate)
	start := time.Now()
	var (
		mu  sync.Mutex
		all result
		wg  sync.WaitGroup
	)
	for i := 0; ; i++ {
		scheduled := start.Add(time.Duration(i) * interval)
		if !scheduled.Before(start.Add(d)) {
			break
		}
		time.Sleep(time.Until(scheduled))
		serve := b.serves[i%len(b.serves)]
		wg.Go(func() {
			_, err := b.handshake(serve)
			latency := time.Since(scheduled)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				all.errors++
				b.reportError(err)
				return
			}
			all.latencies = append(all.latencies, latency)
		})
	}
	wg.Wait()
	all.elapsed = time.Since(start)
	return all
}

// reportError prints the first few errors to stderr.
func (b *bench) reportError(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.anyError = true
	if b.reported < 5 {
		b.reported++
		fmt.Fprintln(os.Stderr, "loadgen: handshake failed:", err)
	}
}

func (b *bench) failed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.anyError
}

// handshake runs one handshake: crypto/tls client on one end of a pipe, the
// server role through the service on the other. The latency runs from the
// start until both sides are done.
func (b *bench) handshake(serve func(context.Context, net.Conn) error) (time.Duration, error) {
	clientEnd, serverEnd := net.Pipe()
	defer clientEnd.Close()
	defer serverEnd.Close()
	deadline := time.Now().Add(handshakeTimeout)
	_ = clientEnd.SetDeadline(deadline)
	_ = serverEnd.SetDeadline(deadline)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()

	start := time.Now()
	clientDone := make(chan error, 1)
	go func() {
		conn := tls.Client(clientEnd, b.tls)
		err := conn.HandshakeContext(ctx)
		if err == nil {
			state := conn.ConnectionState()
			if !state.HandshakeComplete {
				err = errors.New("crypto/tls reports the handshake incomplete")
			}
			b.group.Store(uint32(state.CurveID))
		}
		clientDone <- err
		if err != nil {
			// Unblock a server still waiting for the client.
			_ = clientEnd.Close()
			return
		}
		// Anything the server sends after its handshake is read and dropped,
		// so that its writes never wait on this end.
		_, _ = io.Copy(io.Discard, clientEnd)
	}()
	serverErr := serve(ctx, serverEnd)
	if serverErr != nil {
		// Unblock a client still waiting for the server.
		_ = serverEnd.Close()
	}
	clientErr := <-clientDone
	latency := time.Since(start)
	if serverErr != nil {
		return 0, fmt.Errorf("server side: %w", serverErr)
	}
	if clientErr != nil {
		return 0, fmt.Errorf("client side: %w", clientErr)
	}
	return latency, nil
}

// libraryServer runs the server role with this module's handshaker.Server.
func libraryServer(ctx context.Context, conn net.Conn, config *handshaker.Config) error {
	server := handshaker.Server(conn, config)
	if err := server.HandshakeContext(ctx); err != nil {
		return err
	}
	// COMPLETE without keys is an error in HandshakeContext.
	if !server.ConnectionState().HandshakeComplete {
		return errors.New("handshaker reports the handshake incomplete")
	}
	return nil
}

// unaryServer relays the server role by hand: StartServer with the
// ClientHello, Feed with what the client sends back, then Abort to free the
// session.
func unaryServer(ctx context.Context, conn net.Conn, client pb.HandshakerClient) (err error) {
	buf := make([]byte, 32<<10)
	n, err := conn.Read(buf)
	if err != nil {
		return fmt.Errorf("reading the ClientHello: %w", err)
	}
	started, err := client.StartServer(ctx, &pb.StartServerRequest{
		Options:        &pb.ServerOptions{},
		InBytes:        buf[:n],
		KeysInResponse: true,
	})
	if err != nil {
		return fmt.Errorf("StartServer: %w", err)
	}
	step, keys := started.GetStep(), started.GetKeys()
	session := step.GetSessionId()
	if session == "" {
		return errors.New("StartServer returned no session id")
	}
	defer func() {
		if _, abortErr := client.Abort(ctx, &pb.AbortRequest{SessionId: session}); abortErr != nil && err == nil {
			err = fmt.Errorf("Abort: %w", abortErr)
		}
	}()
	for step.GetState() == pb.HandshakeState_HANDSHAKE_STATE_NEED_INPUT {
		if _, err := conn.Write(step.GetOutBytes()); err != nil {
			return fmt.Errorf("writing to the client: %w", err)
		}
		n, err := conn.Read(buf)
		if err != nil {
			return fmt.Errorf("reading from the client: %w", err)
		}
		fed, err := client.Feed(ctx, &pb.FeedRequest{SessionId: session, InBytes: buf[:n]})
		if err != nil {
			return fmt.Errorf("Feed: %w", err)
		}
		step, keys = fed.GetStep(), fed.GetKeys()
	}
	if out := step.GetOutBytes(); len(out) > 0 {
		if _, err := conn.Write(out); err != nil && step.GetState() == pb.HandshakeState_HANDSHAKE_STATE_COMPLETE {
			return fmt.Errorf("writing to the client: %w", err)
		}
	}
	switch step.GetState() {
	case pb.HandshakeState_HANDSHAKE_STATE_COMPLETE:
		if len(keys.GetRead().GetKey()) == 0 || len(keys.GetWrite().GetKey()) == 0 {
			return errors.New("COMPLETE without keys")
		}
		return nil
	case pb.HandshakeState_HANDSHAKE_STATE_FAILED:
		failure := step.GetFailure()
		return fmt.Errorf("handshake failed: alert %d: %s", failure.GetAlert(), failure.GetReason())
	default:
		return fmt.Errorf("unexpected handshake state %v", step.GetState())
	}
}

// cpuSeconds is the user and system CPU time this process has used.
func cpuSeconds() float64 {
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen: getrusage:", err)
		return 0
	}
	seconds := func(tv syscall.Timeval) float64 { return float64(tv.Sec) + float64(tv.Usec)/1e6 }
	return seconds(usage.Utime) + seconds(usage.Stime)
}
