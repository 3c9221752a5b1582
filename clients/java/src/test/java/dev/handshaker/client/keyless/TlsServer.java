package dev.handshaker.client.keyless;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.InetAddress;
import java.nio.charset.StandardCharsets;
import java.security.cert.X509Certificate;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.KeyManager;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLServerSocket;
import javax.net.ssl.SSLSession;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManager;

/**
 * A stock JSSE server (SSLContext "TLS", SSLServerSocket) on a free loopback port. Each
 * connection reads one line: "GET ..." is answered as HTTP/1.1, anything else is echoed as "echo:
 * LINE"; either answer names the protocol, suite, key algorithm and, with client auth, the
 * client's subject. Each connection's outcome (the session or the exception) is queued for the
 * test.
 */
final class TlsServer implements AutoCloseable {
  /** One connection as the server saw it. */
  record Outcome(String protocol, String cipherSuite, String peerSubject, Exception failure) {}

  private final SSLServerSocket listener;
  private final BlockingQueue<Outcome> outcomes = new LinkedBlockingQueue<>();
  private final Thread acceptor;

  TlsServer(KeyManager keyManager, TrustManager trustManager, boolean needClientAuth, String... cipherSuites)
      throws Exception {
    SSLContext context = SSLContext.getInstance("TLS");
    context.init(new KeyManager[] {keyManager}, trustManager == null ? null : new TrustManager[] {trustManager}, null);
    listener = (SSLServerSocket) context.getServerSocketFactory().createServerSocket(0, 50, InetAddress.getLoopbackAddress());
    listener.setEnabledProtocols(new String[] {"TLSv1.3", "TLSv1.2"});
    if (cipherSuites.length > 0) {
      listener.setEnabledCipherSuites(cipherSuites);
    }
    listener.setNeedClientAuth(needClientAuth);
    acceptor = new Thread(this::acceptLoop, "keyless-tls-server");
    acceptor.setDaemon(true);
    acceptor.start();
  }

  private void acceptLoop() {
    while (!listener.isClosed()) {
      SSLSocket socket;
      try {
        socket = (SSLSocket) listener.accept();
      } catch (IOException closed) {
        return;
      }
      Thread connection = new Thread(() -> serve(socket), "keyless-tls-connection");
      connection.setDaemon(true);
      connection.start();
    }
  }

  private void serve(SSLSocket socket) {
    try (socket) {
      socket.setSoTimeout(20_000);
      socket.startHandshake();
      SSLSession session = socket.getSession();
      String peer = "-";
      if (socket.getNeedClientAuth()) {
        peer = ((X509Certificate) session.getPeerCertificates()[0]).getSubjectX500Principal().getName();
      }
      String about = session.getProtocol() + " " + session.getCipherSuite() + " "
          + session.getLocalCertificates()[0].getPublicKey().getAlgorithm() + " " + peer;
      BufferedReader in = new BufferedReader(new InputStreamReader(socket.getInputStream(), StandardCharsets.UTF_8));
      OutputStream out = socket.getOutputStream();
      String line = in.readLine();
      if (line != null && line.startsWith("GET ")) {
        for (String header = in.readLine(); header != null && !header.isEmpty(); header = in.readLine()) {
          // The request's headers say nothing the test needs.
        }
        byte[] body = ("hello over " + about + "\n").getBytes(StandardCharsets.UTF_8);
        out.write(("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + body.length
            + "\r\nConnection: close\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
        out.write(body);
      } else {
        out.write(("echo: " + line + " over " + about + "\n").getBytes(StandardCharsets.UTF_8));
      }
      out.flush();
      outcomes.add(new Outcome(session.getProtocol(), session.getCipherSuite(), peer, null));
    } catch (Exception e) {
      outcomes.add(new Outcome(null, null, null, e));
    }
  }

  int port() {
    return listener.getLocalPort();
  }

  /** The next connection's outcome, waiting up to 20 s. */
  Outcome next() throws InterruptedException {
    Outcome outcome = outcomes.poll(20, TimeUnit.SECONDS);
    if (outcome == null) {
      throw new AssertionError("the server saw no connection finish");
    }
    return outcome;
  }

  @Override
  public void close() throws IOException {
    listener.close();
  }
}
