package handshaker_test

// Config.Multiplex: handshakes on shared Multiplex streams, against the real
// service, watched through a gRPC interceptor that records the streams
// opened and the frames and results on them.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/handshaker/handshaker/clients/go/gen/handshaker/v1"
	"github.com/handshaker/handshaker/clients/go/handshaker"
)

const (
	handshakeMethod = "/handshaker.v1.Handshaker/Handshake"
	multiplexMethod = "/handshaker.v1.Handshaker/Multiplex"
)

// muxRecorder sees every stream a channel opens and what goes over its
// Multiplex streams.
type muxRecorder struct {
	mu       sync.Mutex
	opened   map[string]int // streams opened, by method
	requests int            // MultiplexRequests sent
	frames   int            // frames in them
	maxBatch int            // most frames in one request
	starts   []uint64       // connection ids of start frames, in order
	aborts   map[uint64]bool
	acked    map[uint64]bool // abort results (an id with neither response nor error)
	finals   map[uint64]bool // results that end a connection: COMPLETE, FAILED or an error
}

func (r *muxRecorder) streams(method string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.opened[method]
}

func (r *muxRecorder) lastStart() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.starts) == 0 {
		return 0
	}
	return r.starts[len(r.starts)-1]
}

func (r *muxRecorder) sent(frames []*pb.ConnectionFrame) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	r.frames += len(frames)
	r.maxBatch = max(r.maxBatch, len(frames))
	for _, frame := range frames {
		switch {
		case frame.GetAbort():
			r.aborts[frame.GetConnectionId()] = true
		case frame.GetRequest().GetStart() != nil:
			r.starts = append(r.starts, frame.GetConnectionId())
		}
	}
}

func (r *muxRecorder) received(results []*pb.ConnectionResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, result := range results {
		id := result.GetConnectionId()
		switch {
		case result.GetError() != nil:
			r.finals[id] = true
		case result.GetResponse() == nil:
			r.acked[id] = true
		case result.GetResponse().GetStep().GetState() != pb.HandshakeState_HANDSHAKE_STATE_NEED_INPUT:
			r.finals[id] = true
		}
	}
}

type recordingStream struct {
	grpc.ClientStream
	recorder *muxRecorder
}

func (s *recordingStream) SendMsg(m any) error {
	err := s.ClientStream.SendMsg(m)
	if request, ok := m.(*pb.MultiplexRequest); ok && err == nil {
		s.recorder.sent(request.GetFrames())
	}
	return err
}

func (s *recordingStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if response, ok := m.(*pb.MultiplexResponse); ok && err == nil {
		s.recorder.received(response.GetResults())
	}
	return err
}

// recordingOptions are the dial options of a channel that r watches.
func recordingOptions(r *muxRecorder) []grpc.DialOption {
	return []grpc.DialOption{grpc.WithStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		stream, err := streamer(ctx, desc, cc, method, opts...)
		r.mu.Lock()
		r.opened[method]++
		r.mu.Unlock()
		if err != nil {
			return nil, err
		}
		return &recordingStream{ClientStream: stream, recorder: r}, nil
	})}
}

func newMuxRecorder() *muxRecorder {
	return &muxRecorder{opened: map[string]int{}, aborts: map[uint64]bool{}, acked: map[uint64]bool{}, finals: map[uint64]bool{}}
}

// recordedChannel is a channel of the test's own to addr, watched by the
// returned recorder and closed when the test ends.
func recordedChannel(t *testing.T, addr string, extra ...grpc.DialOption) (*grpc.ClientConn, *muxRecorder) {
	t.Helper()
	recorder := newMuxRecorder()
	options := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, recordingOptions(recorder)...)
	cc, err := grpc.NewClient(addr, append(options, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc, recorder
}

// gate relays connections to upstream, but holds each one after its first
// bytes arrive (a ClientHello, sent once the service started the
// connection) until open is called.
type gate struct {
	addr    string
	arrived chan struct{}
	release chan struct{}
	once    sync.Once
}

func newGate(t *testing.T, upstream string) *gate {
	t.Helper()
	ln := loopbackListener(t)
	g := &gate{addr: ln.Addr().String(), arrived: make(chan struct{}, 1000), release: make(chan struct{})}
	serveConns(t, ln, func(conn net.Conn) {
		first := make([]byte, 64<<10)
		n, err := conn.Read(first)
		if err != nil {
			return
		}
		g.arrived <- struct{}{}
		<-g.release
		up, err := net.DialTimeout("tcp", upstream, ioTimeout)
		if err != nil {
			return
		}
		defer up.Close()
		if _, err := up.Write(first[:n]); err != nil {
			return
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _ = io.Copy(conn, up)
			_ = conn.Close()
		}()
		_, _ = io.Copy(up, conn)
		_ = up.Close()
		<-done
	})
	t.Cleanup(g.open) // runs before serveConns waits for the held connections
	return g
}

func (g *gate) open() { g.once.Do(func() { close(g.release) }) }

// await waits until n held connections have sent their first bytes.
func (g *gate) await(t *testing.T, n int) {
	t.Helper()
	timeout := time.After(ioTimeout)
	for range n {
		select {
		case <-g.arrived:
		case <-timeout:
			t.Fatalf("fewer than %d connections reached the gate", n)
		}
	}
}

// heldDials starts n Dials to g that the gate holds mid-handshake, with the
// service's side of each live on the Multiplex streams; they finish once the
// gate opens, sending their results (a round trip on success) to the channel.
func heldDials(t *testing.T, g *gate, config *handshaker.Config, n int) <-chan error {
	t.Helper()
	results := make(chan error, n)
	for range n {
		go func() {
			conn, err := dialErr(g.addr, config)
			if err == nil {
				defer conn.Close()
				err = echoes(conn, []byte("held"))
			}
			results <- err
		}()
	}
	g.await(t, n)
	return results
}

// echoes is roundTrip for goroutines other than the test's.
func echoes(conn net.Conn, message []byte) error {
	if _, err := conn.Write(message); err != nil {
		return err
	}
	got := make([]byte, len(message))
	if _, err := io.ReadFull(conn, got); err != nil {
		return err
	}
	if string(got) != string(message) {
		return fmt.Errorf("echo %q, want %q", got, message)
	}
	return nil
}

func collect(t *testing.T, results <-chan error, n int, what string) {
	t.Helper()
	for range n {
		if err := <-results; err != nil {
			t.Errorf("%s: %v", what, err)
		}
	}
}

func TestMultiplexDialToCryptoTLSServer(t *testing.T) {
	s := needService(t)
	cc, recorder := recordedChannel(t, s.addr)
	serverStates := make(chan tls.ConnectionState, 1)
	addr := serveTLS(t, &tls.Config{Certificates: []tls.Certificate{s.localhost}, NextProtos: []string{"h2"}}, nil, func(conn *tls.Conn) {
		serverStates <- conn.ConnectionState()
		echo(conn)
	})
	conn := dial(t, addr, &handshaker.Config{Service: cc, Multiplex: true, ServerName: "localhost", NextProtos: []string{"h2"}})
	roundTrip(t, conn, []byte("client to server and back"))
	roundTrip(t, conn, randomBytes(t, 100_000))
	state, server := conn.ConnectionState(), <-serverStates
	if !state.HandshakeComplete || state.NegotiatedProtocol != "h2" || state.CipherSuite != server.CipherSuite {
		t.Errorf("client state %+v, server suite %#04x", state, server.CipherSuite)
	}
	if got := recorder.streams(multiplexMethod); got != 1 {
		t.Errorf("%d Multiplex streams opened, want 1", got)
	}
	if got := recorder.streams(handshakeMethod); got != 0 {
		t.Errorf("%d Handshake streams opened with Multiplex set", got)
	}
}

func TestMultiplexListenerServesCryptoTLSClient(t *testing.T) {
	s := needService(t)
	recorder := newMuxRecorder()
	// DialOptions: a channel owned by this Config.
	config := &handshaker.Config{DialOptions: recordingOptions(recorder), Multiplex: true, Credential: "localhost"}
	serverStates := make(chan handshaker.ConnectionState, 3)
	addr := serveEcho(t, config, serverStates, nil)
	for i := range 3 {
		conn, err := tlsDial(t, addr, &tls.Config{ServerName: "localhost", RootCAs: s.devCA})
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, conn, fmt.Appendf(nil, "connection %d", i))
		roundTrip(t, conn, randomBytes(t, 70_000))
		if state := <-serverStates; !state.HandshakeComplete || state.ServerName != "localhost" {
			t.Errorf("server state %+v", state)
		}
	}
	// Connection ids 1, 2, 3 map to both streams.
	if got := recorder.streams(multiplexMethod); got != 2 {
		t.Errorf("%d Multiplex streams opened, want 2", got)
	}
	if got := recorder.streams(handshakeMethod); got != 0 {
		t.Errorf("%d Handshake streams opened with Multiplex set", got)
	}
}

func TestMultiplexRunsManyConcurrentHandshakesOnTwoStreams(t *testing.T) {
	s := needService(t)
	cc, recorder := recordedChannel(t, s.addr)
	addr := serveTLS(t, &tls.Config{Certificates: []tls.Certificate{s.localhost}}, nil, echo)
	const n = 100
	results := make(chan error, n)
	for i := range n {
		go func() {
			// A Config each, as callers with per-connection settings have:
			// the channel, and so the streams, are still shared.
			conn, err := dialErr(addr, &handshaker.Config{Service: cc, Multiplex: true, ServerName: "localhost"})
			if err == nil {
				defer conn.Close()
				err = echoes(conn, fmt.Appendf(nil, "handshake %d", i))
			}
			results <- err
		}()
	}
	collect(t, results, n, "concurrent handshake")
	if got := recorder.streams(multiplexMethod); got != 2 {
		t.Errorf("%d Multiplex streams opened, want 2", got)
	}
	recorder.mu.Lock()
	defer recorder.mu.Unlock()
	if len(recorder.starts) != n || len(recorder.finals) != n || len(recorder.aborts) != 0 {
		t.Errorf("%d starts, %d final results, %d aborts; want %d, %d, 0", len(recorder.starts), len(recorder.finals), len(recorder.aborts), n, n)
	}
	// Each client handshake takes at least two frames: the start and the server's flight.
	if recorder.frames < 2*n {
		t.Errorf("%d frames sent, want at least %d", recorder.frames, 2*n)
	}
	if recorder.maxBatch < 2 || recorder.requests >= recorder.frames {
		t.Errorf("%d frames in %d requests (at most %d in one): frames ready together were not batched", recorder.frames, recorder.requests, recorder.maxBatch)
	}
}

func TestMultiplexHandshakeFailureLeavesOtherConnectionsRunning(t *testing.T) {
	s := needService(t)
	cc, recorder := recordedChannel(t, s.addr)
	addr := serveTLS(t, &tls.Config{Certificates: []tls.Certificate{s.localhost}}, nil, echo)
	g := newGate(t, addr)
	const held = 10
	results := heldDials(t, g, &handshaker.Config{Service: cc, Multiplex: true, ServerName: "localhost"}, held)

	// Live connections on both streams; now one fails beside them.
	_, err := dialErr(addr, &handshaker.Config{Service: cc, Multiplex: true, ServerName: "localhost", RootCAsPEM: unrelatedCAPEM(t)})
	var failure *handshaker.HandshakeError
	if !errors.As(err, &failure) || failure.Alert != handshaker.AlertUnknownCA || failure.SentByPeer {
		t.Fatalf("Dial error %v (%T), want unknown_ca raised by this side", err, err)
	}
	g.open()
	collect(t, results, held, "a handshake running beside the failed one")
	if got := recorder.streams(multiplexMethod); got != 2 {
		t.Errorf("%d Multiplex streams opened, want the same 2 throughout", got)
	}
}

func TestMultiplexMisuseFailsOnlyThatConnectionWithItsStatus(t *testing.T) {
	s := needService(t)
	cc, recorder := recordedChannel(t, s.addr)
	addr := serveTLS(t, &tls.Config{Certificates: []tls.Certificate{s.localhost}}, nil, echo)
	g := newGate(t, addr)
	const held = 10
	results := heldDials(t, g, &handshaker.Config{Service: cc, Multiplex: true, ServerName: "localhost"}, held)

	for _, tc := range []struct {
		name   string
		config *handshaker.Config
		want   codes.Code
	}{
		{"unknown credential", &handshaker.Config{Credential: "no-such-credential"}, codes.NotFound},
		{"unknown trust bundle", &handshaker.Config{TrustBundle: "no-such-bundle"}, codes.NotFound},
		{"bad cipher suite", &handshaker.Config{CipherSuites: []uint16{0x1234}}, codes.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.config.Service, tc.config.Multiplex, tc.config.ServerName = cc, true, "localhost"
			_, err := dialErr(addr, tc.config)
			if got := status.Code(err); got != tc.want {
				t.Fatalf("Dial error %v: status %v, want %v", err, got, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "handshaker: service: ") {
				t.Errorf("error text %q", err)
			}
			id := recorder.lastStart()
			recorder.mu.Lock()
			defer recorder.mu.Unlock()
			if !recorder.finals[id] || recorder.aborts[id] {
				t.Errorf("connection %d: final result %v, aborted %v; want its error result and no abort", id, recorder.finals[id], recorder.aborts[id])
			}
		})
	}
	t.Run("server role", func(t *testing.T) {
		ours, theirs := net.Pipe()
		defer ours.Close()
		defer theirs.Close()
		_ = ours.SetDeadline(time.Now().Add(ioTimeout))
		_ = theirs.SetDeadline(time.Now().Add(ioTimeout))
		go func() {
			_ = tls.Client(theirs, &tls.Config{ServerName: "localhost", RootCAs: s.devCA}).Handshake()
			theirs.Close()
		}()
		err := handshaker.Server(ours, &handshaker.Config{Service: cc, Multiplex: true, Credential: "no-such-credential"}).Handshake()
		if got := status.Code(err); got != codes.NotFound {
			t.Fatalf("Handshake error %v: status %v, want NotFound", err, got)
		}
	})

	g.open()
	collect(t, results, held, "a handshake running beside the misused ones")
	if got := recorder.streams(multiplexMethod); got != 2 {
		t.Errorf("%d Multiplex streams opened, want the same 2 throughout", got)
	}
}

// eventually polls cond for up to ten seconds.
func eventually(cond func() bool) bool {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

func TestMultiplexAbortsHandshakesThatEndOnThisSide(t *testing.T) {
	s := needService(t)
	cc, recorder := recordedChannel(t, s.addr)
	config := &handshaker.Config{Service: cc, Multiplex: true, ServerName: "localhost"}

	silent := loopbackListener(t)
	serveConns(t, silent, func(conn net.Conn) { _, _ = io.Copy(io.Discard, conn) })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := handshaker.Dial(ctx, "tcp", silent.Addr().String(), config); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial to a silent peer: %v, want context.DeadlineExceeded", err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("Dial returned after %v", elapsed)
	}
	timedOut := recorder.lastStart()

	hangsUp := loopbackListener(t)
	serveConns(t, hangsUp, func(conn net.Conn) { _, _ = conn.Read(make([]byte, 1<<16)) })
	if _, err := dialErr(hangsUp.Addr().String(), config); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("Dial to a peer that hangs up: %v, want io.ErrUnexpectedEOF", err)
	}
	hungUp := recorder.lastStart()

	addr := serveTLS(t, &tls.Config{Certificates: []tls.Certificate{s.localhost}}, nil, echo)
	roundTrip(t, dial(t, addr, config), []byte("completed"))
	completed := recorder.lastStart()

	for _, id := range []uint64{timedOut, hungUp} {
		if !eventually(func() bool {
			recorder.mu.Lock()
			defer recorder.mu.Unlock()
			return recorder.aborts[id] && recorder.acked[id]
		}) {
			t.Errorf("connection %d: no abort frame answered by the service", id)
		}
	}
	recorder.mu.Lock()
	defer recorder.mu.Unlock()
	if timedOut == hungUp || hungUp == completed || recorder.aborts[completed] || !recorder.finals[completed] {
		t.Errorf("connections %d, %d, %d: the completed one was aborted (%v) or did not end (%v)", timedOut, hungUp, completed, recorder.aborts[completed], recorder.finals[completed])
	}
}

// goroutinesDropTo waits for the number of goroutines to fall to at most n.
func goroutinesDropTo(t *testing.T, n int, when string) {
	t.Helper()
	if !eventually(func() bool { return runtime.NumGoroutine() <= n }) {
		t.Errorf("%s: %d goroutines, want at most %d", when, runtime.NumGoroutine(), n)
	}
}

func TestMultiplexLeavesNoGoroutinesBehind(t *testing.T) {
	s := needService(t)
	before := runtime.NumGoroutine()
	recorder := newMuxRecorder()
	cc, err := grpc.NewClient(s.addr, append(recordingOptions(recorder), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	config := &handshaker.Config{Service: cc, Multiplex: true, ServerName: "localhost"}
	var running int
	t.Run("handshakes", func(t *testing.T) {
		addr := serveTLS(t, &tls.Config{Certificates: []tls.Certificate{s.localhost}}, nil, echo)
		for range 2 { // both streams open
			conn := dial(t, addr, config)
			roundTrip(t, conn, []byte("warm up"))
			conn.Close()
		}
		silent := loopbackListener(t)
		serveConns(t, silent, func(conn net.Conn) { _, _ = io.Copy(io.Discard, conn) })
		distrusting := &handshaker.Config{Service: cc, Multiplex: true, ServerName: "localhost", RootCAsPEM: unrelatedCAPEM(t)}
		running = runtime.NumGoroutine()
		var wg sync.WaitGroup
		for i := range 40 {
			wg.Go(func() {
				switch i % 4 {
				case 0: // fails in the service
					_, _ = dialErr(addr, distrusting)
				case 1: // its ctx ends while the service waits for the peer
					ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
					defer cancel()
					if conn, err := handshaker.Dial(ctx, "tcp", silent.Addr().String(), config); err == nil {
						conn.Close()
					}
				default:
					if conn, err := dialErr(addr, config); err == nil {
						_ = echoes(conn, []byte("leak check"))
						conn.Close()
					}
				}
			})
		}
		wg.Wait()
		// The crypto/tls server's goroutines end as the clients close.
		goroutinesDropTo(t, running, "after 40 more handshakes on open streams")
	})
	if t.Failed() {
		return
	}
	if got := recorder.streams(multiplexMethod); got != 2 {
		t.Errorf("%d Multiplex streams opened, want 2", got)
	}
	// Closing the channel ends the streams and their goroutines.
	cc.Close()
	goroutinesDropTo(t, before, "after the channel closed")
}

func TestMultiplexSurvivesTheServiceRestarting(t *testing.T) {
	s := needService(t)
	probe := loopbackListener(t)
	serviceAddr := probe.Addr().String()
	probe.Close()
	stop, process, err := serveProcess(s.bin, s.keystore, "tcp", serviceAddr)
	if err != nil {
		t.Fatal(err)
	}
	stopOnce := sync.OnceFunc(stop)
	defer func() { stopOnce() }()
	cc, recorder := recordedChannel(t, serviceAddr, grpc.WithConnectParams(grpc.ConnectParams{
		Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, MaxDelay: 300 * time.Millisecond},
		MinConnectTimeout: 2 * time.Second,
	}))
	config := &handshaker.Config{Service: cc, Multiplex: true, ServerName: "localhost"}
	addr := serveTLS(t, &tls.Config{Certificates: []tls.Certificate{s.localhost}}, nil, echo)
	roundTrip(t, dial(t, addr, config), []byte("before"))
	g := newGate(t, addr)
	held := heldDials(t, g, config, 1)

	// Frozen, the service leaves a start frame unanswered; killed, it breaks
	// the stream under the handshake waiting for that answer.
	if err := process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waiting := make(chan error, 1)
	go func() {
		_, err := dialErr(addr, config)
		waiting <- err
	}()
	time.Sleep(200 * time.Millisecond)
	if err := process.Kill(); err != nil {
		t.Fatal(err)
	}
	stopOnce()
	select {
	case err := <-waiting:
		if got := status.Code(err); got != codes.Unavailable {
			t.Errorf("the handshake waiting when the service died: %v (status %v), want Unavailable", err, got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the handshake waiting when the service died still waits")
	}
	// The held connection's next frame goes to a broken stream.
	g.open()
	if err := <-held; status.Code(err) != codes.Unavailable {
		t.Errorf("a connection live when the service died: %v, want status Unavailable", err)
	}
	if _, err := dialErr(addr, config); status.Code(err) != codes.Unavailable {
		t.Errorf("Dial with the service down: %v, want status Unavailable", err)
	}

	opened := recorder.streams(multiplexMethod)
	stop, err = serve(s.bin, s.keystore, "tcp", serviceAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	// The channel reconnects within its backoff; until then Dial reports Unavailable.
	var conn *handshaker.Conn
	if !eventually(func() bool {
		conn, err = dialErr(addr, config)
		return err == nil || status.Code(err) != codes.Unavailable
	}) || err != nil {
		t.Fatalf("Dial after the service restarted: %v", err)
	}
	defer conn.Close()
	roundTrip(t, conn, []byte("after"))
	if got := recorder.streams(multiplexMethod); got <= opened {
		t.Errorf("Multiplex streams opened: %d before the restart, %d after; want a new one", opened, got)
	}
}
