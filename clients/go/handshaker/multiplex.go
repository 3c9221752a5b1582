package handshaker

// The Multiplex stream: the handshakes of every Conn on a gRPC channel share
// a few long-lived streams. Each stream has a sender goroutine and a receiver
// goroutine, which hands each result to the handshake waiting for its
// connection id. The sender keeps one request in flight: every frame queued
// while the service works on a request goes out together in the next one, so
// batches grow with the load and the service's per-message cost is shared by
// many handshakes.

import (
	"context"
	"io"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/handshaker/handshaker/clients/go/gen/handshaker/v1"
)

const (
	// multiplexStreams is how many Multiplex streams a channel's handshakes
	// share; connection id N stays on stream N % multiplexStreams. More than
	// one lets the service work on one stream's batch while this side relays
	// the answers of another.
	multiplexStreams = 2
	// A MultiplexRequest holds at most this many frames and, past the first
	// frame, about this many bytes, so that neither it nor the response that
	// answers all of its frames at once nears gRPC's 4 MiB message limit.
	maxBatchFrames = 128
	maxBatchBytes  = 1 << 20
	// The largest MultiplexResponse accepted: maxBatchFrames results with a
	// long certificate chain each, and the idle-connection errors the service
	// may add.
	maxResponseBytes = 64 << 20
)

// multiplexer runs the Multiplex streams of one gRPC channel.
type multiplexer struct {
	client pb.HandshakerClient
	// cc is the channel when it is a *grpc.ClientConn, to tell a broken
	// stream from a channel that was closed; else nil.
	cc     *grpc.ClientConn
	key    muxKey
	ctx    context.Context // ends every stream when canceled
	cancel context.CancelFunc
	// nextID hands out connection ids, never reused (0 is not an id).
	nextID atomic.Uint64
	slots  [multiplexStreams]struct {
		sync.Mutex
		stream *muxStream // nil or failed: open a new one on next use
	}
}

func newMultiplexer(channel grpc.ClientConnInterface, key muxKey) *multiplexer {
	ctx, cancel := context.WithCancel(context.Background())
	cc, _ := channel.(*grpc.ClientConn)
	return &multiplexer{client: pb.NewHandshakerClient(channel), cc: cc, key: key, ctx: ctx, cancel: cancel}
}

// close ends the multiplexer's streams, and with them every connection on
// them; handshakes waiting for an answer fail with codes.Canceled.
func (m *multiplexer) close() { m.cancel() }

// connect returns a new connection on the stream its id maps to, opening
// that stream if it is not running.
func (m *multiplexer) connect() *muxConn {
	id := m.nextID.Add(1)
	slot := &m.slots[id%multiplexStreams]
	slot.Lock()
	s := slot.stream
	if s == nil || s.failed() {
		s = m.open()
		slot.stream = s
	}
	slot.Unlock()
	mc := &muxConn{id: id, stream: s, results: make(chan *pb.ConnectionResult, 1)}
	s.register(id, mc.results)
	return mc
}

// open starts a stream; frames queue while it connects.
func (m *multiplexer) open() *muxStream {
	ctx, cancel := context.WithCancel(m.ctx)
	s := &muxStream{
		cancel:   cancel,
		wake:     make(chan struct{}, 1),
		answered: make(chan struct{}, 1),
		done:     make(chan struct{}),
		waiters:  map[uint64]chan<- *pb.ConnectionResult{},
	}
	go m.run(ctx, s)
	return s
}

// run opens the stream, starts its receiver and becomes its sender.
func (m *multiplexer) run(ctx context.Context, s *muxStream) {
	stream, err := m.client.Multiplex(ctx, grpc.MaxCallRecvMsgSize(maxResponseBytes))
	if err != nil {
		m.failed(s, err)
		return
	}
	go m.receive(s, stream)
	s.send(stream)
}

func (m *multiplexer) receive(s *muxStream, stream pb.Handshaker_MultiplexClient) {
	for {
		response, err := stream.Recv()
		if err != nil {
			m.failed(s, err)
			return
		}
		// Every request is answered by one response. (An unsolicited one, an
		// idle connection's expiry, may let one request go early: harmless.)
		select {
		case s.answered <- struct{}{}:
		default:
		}
		s.deliver(response.GetResults())
	}
}

// failed fails stream s; when the channel itself was closed, the
// multiplexer is dropped so that the channel can be collected.
func (m *multiplexer) failed(s *muxStream, err error) {
	s.fail(err)
	if m.cc != nil && m.cc.GetState() == connectivity.Shutdown {
		forgetMultiplexer(m)
	}
}

// muxStream is one Multiplex stream.
type muxStream struct {
	cancel   context.CancelFunc
	wake     chan struct{} // frames were queued
	answered chan struct{} // a response arrived
	done     chan struct{} // closed when the stream has failed

	mu      sync.Mutex
	err     error // why the stream failed
	queue   []*pb.ConnectionFrame
	waiters map[uint64]chan<- *pb.ConnectionResult
}

func (s *muxStream) failed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// failure returns why the stream failed; call it once done is closed.
func (s *muxStream) failure() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// fail records the stream's first error, wakes every waiter through done
// and ends the gRPC stream (the service frees its connections).
func (s *muxStream) fail(err error) {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	s.err = err
	s.queue = nil
	s.waiters = nil
	close(s.done)
	s.mu.Unlock()
	s.cancel()
}

func (s *muxStream) register(id uint64, results chan<- *pb.ConnectionResult) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.waiters != nil {
		s.waiters[id] = results
	}
}

func (s *muxStream) unregister(id uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.waiters, id)
}

// enqueue queues a frame for the sender; it fails once the stream has.
func (s *muxStream) enqueue(frame *pb.ConnectionFrame) error {
	s.mu.Lock()
	if s.err != nil {
		err := s.err
		s.mu.Unlock()
		return err
	}
	s.queue = append(s.queue, frame)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return nil
}

// deliver hands each result to its connection's waiter; results for
// connections nobody waits for (aborted or finished) are dropped.
func (s *muxStream) deliver(results []*pb.ConnectionResult) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, result := range results {
		if waiter, ok := s.waiters[result.GetConnectionId()]; ok {
			select {
			case waiter <- result:
			default: // a connection has one frame in flight; a second result is moot
			}
		}
	}
}

// send writes the queued frames until the stream fails, one request at a
// time: whatever queued while a request was unanswered goes out together in
// the next.
func (s *muxStream) send(stream pb.Handshaker_MultiplexClient) {
	for {
		select {
		case <-s.wake:
		case <-s.done:
			return
		}
		s.mu.Lock()
		queued := s.queue
		s.queue = nil
		s.mu.Unlock()
		for len(queued) > 0 {
			n, size := 0, 0
			for n < len(queued) && n < maxBatchFrames && (n == 0 || size < maxBatchBytes) {
				size += proto.Size(queued[n])
				n++
			}
			if err := stream.Send(&pb.MultiplexRequest{Frames: queued[:n:n]}); err != nil {
				if err != io.EOF {
					s.fail(err)
				}
				// On io.EOF the service ended the stream; the receiver gets
				// its status from Recv and fails the stream with it.
				return
			}
			queued = queued[n:]
			select {
			case <-s.answered:
			case <-s.done:
				return
			}
		}
	}
}

// muxConn is one handshake's connection on a Multiplex stream.
type muxConn struct {
	id      uint64
	stream  *muxStream
	results chan *pb.ConnectionResult
	// live is true while the service holds the connection: a frame went out
	// and no final answer (COMPLETE, FAILED or an error) came back.
	live bool
}

func (mc *muxConn) exchange(ctx context.Context, request *pb.HandshakeRequest) (*pb.HandshakeResponse, error) {
	select {
	case result := <-mc.results:
		// A result while no frame was in flight: the service ended the
		// connection (it was idle too long).
		return mc.answer(result)
	default:
	}
	if err := mc.stream.enqueue(&pb.ConnectionFrame{ConnectionId: mc.id, Request: request}); err != nil {
		mc.live = false
		return nil, serviceError(err)
	}
	mc.live = true
	select {
	case result := <-mc.results:
		return mc.answer(result)
	case <-mc.stream.done:
		select {
		case result := <-mc.results:
			return mc.answer(result)
		default:
		}
		mc.live = false
		return nil, serviceError(mc.stream.failure())
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (mc *muxConn) answer(result *pb.ConnectionResult) (*pb.HandshakeResponse, error) {
	if e := result.GetError(); e != nil {
		mc.live = false
		return nil, serviceError(connectionError(e.GetCode(), e.GetMessage()))
	}
	response := result.GetResponse()
	if response == nil {
		return nil, contractError("a Multiplex result with neither a response nor an error")
	}
	if response.GetStep().GetState() != pb.HandshakeState_HANDSHAKE_STATE_NEED_INPUT {
		mc.live = false // the service has freed the connection
	}
	return response, nil
}

// connectionError is the status error of a connection the service ended for
// misuse.
func connectionError(code uint32, message string) error {
	if code == uint32(codes.OK) {
		code = uint32(codes.Unknown) // an error must not read as success
	}
	return status.Error(codes.Code(code), message)
}

// close stops waiting for results and, when the service still holds the
// connection (the handshake's ctx ended or it failed on this side), frees it
// with an abort frame, without waiting for the answer.
func (mc *muxConn) close() {
	mc.stream.unregister(mc.id)
	if mc.live {
		mc.live = false
		_ = mc.stream.enqueue(&pb.ConnectionFrame{ConnectionId: mc.id, Abort: true})
	}
}
