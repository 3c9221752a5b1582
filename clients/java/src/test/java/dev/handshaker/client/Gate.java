package dev.handshaker.client;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.Arrays;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * A TCP relay to an upstream port that holds each connection after its first bytes arrive (a
 * ClientHello, sent once the service started the client's connection) until {@link #open()}: the
 * handshakes through it stay live in the service, mid-handshake, while a test does something else.
 */
final class Gate implements AutoCloseable {
  private final ServerSocket listener;
  private final int upstream;
  private final Semaphore arrived = new Semaphore(0);
  private final CountDownLatch release = new CountDownLatch(1);
  private final ExecutorService threads = Executors.newCachedThreadPool(JsseEchoServer.daemon("gate"));

  Gate(int upstream) throws IOException {
    this.upstream = upstream;
    listener = new ServerSocket(0, 256, InetAddress.getLoopbackAddress());
    threads.execute(
        () -> {
          while (!listener.isClosed()) {
            try {
              Socket client = listener.accept();
              threads.execute(() -> hold(client));
            } catch (IOException closed) {
              return;
            }
          }
        });
  }

  int port() {
    return listener.getLocalPort();
  }

  private void hold(Socket client) {
    try (client;
        Socket up = new Socket()) {
      client.setSoTimeout(60_000);
      byte[] buffer = new byte[64 * 1024];
      int n = client.getInputStream().read(buffer);
      if (n < 0) {
        return;
      }
      arrived.release();
      release.await();
      up.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), upstream), 10_000);
      up.getOutputStream().write(Arrays.copyOf(buffer, n));
      Future<?> back = threads.submit(() -> pipe(up, client));
      pipe(client, up);
      back.get(60, TimeUnit.SECONDS);
    } catch (IOException | InterruptedException | ExecutionException | TimeoutException e) {
      // The connection ends; its handshake sees that.
    }
  }

  private static void pipe(Socket from, Socket to) {
    try {
      InputStream in = from.getInputStream();
      OutputStream out = to.getOutputStream();
      byte[] buffer = new byte[16 * 1024];
      for (int n; (n = in.read(buffer)) > 0; ) {
        out.write(buffer, 0, n);
        out.flush();
      }
      to.shutdownOutput();
    } catch (IOException e) {
      // One side went away.
    }
  }

  /** Waits until {@code n} held connections have sent their first bytes; false on timeout. */
  boolean await(int n, long seconds) throws InterruptedException {
    return arrived.tryAcquire(n, seconds, TimeUnit.SECONDS);
  }

  /** Lets every held connection, and every later one, through. */
  void open() {
    release.countDown();
  }

  @Override
  public void close() throws IOException {
    open();
    listener.close();
    threads.shutdown();
  }
}
