package dev.handshaker.examples;

import dev.handshaker.client.HandshakerServerSocket;
import dev.handshaker.client.HandshakerSocket;
import dev.handshaker.client.ServerConfig;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;

/**
 * An HTTPS server on a {@link HandshakerServerSocket}: each TLS handshake runs in the handshaker
 * service ($HANDSHAKER_ADDR, default 127.0.0.1:50051) with the keystore credential named here;
 * this process never sees the private key.
 *
 * <pre>
 * Serve [PORT [CREDENTIAL]]      (default 8443 and the credential "localhost")
 * </pre>
 */
public final class Serve {
  private Serve() {}

  public static void main(String[] args) throws IOException {
    int port = args.length > 0 ? Integer.parseInt(args[0]) : 8443;
    String credential = args.length > 1 ? args[1] : "localhost";
    ServerConfig config =
        ServerConfig.builder().credential(credential).alpnProtocols("http/1.1").build();
    try (HandshakerServerSocket listener =
        HandshakerServerSocket.bind(new InetSocketAddress("127.0.0.1", port), config)) {
      System.err.printf("listening on https://localhost:%d/ (credential %s)%n", port, credential);
      while (true) {
        HandshakerSocket socket = listener.accept();
        new Thread(() -> serve(socket), "https-" + socket.getPort()).start();
      }
    }
  }

  private static void serve(HandshakerSocket socket) {
    try (socket) {
      socket.setSoTimeout(30_000);
      socket.startHandshake();
      String head = readHead(socket.getInputStream());
      String body =
          "hello from handshaker: "
              + socket.session().cipherSuite()
              + ", you asked for "
              + head.split(" ", 3)[1]
              + "\n";
      byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
      OutputStream out = socket.getOutputStream();
      out.write(
          ("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + bytes.length
                  + "\r\nConnection: close\r\n\r\n")
              .getBytes(StandardCharsets.US_ASCII));
      out.write(bytes);
    } catch (IOException e) {
      System.err.println("connection from " + socket.getRemoteSocketAddress() + ": " + e.getMessage());
    }
  }

  private static String readHead(InputStream in) throws IOException {
    ByteArrayOutputStream head = new ByteArrayOutputStream();
    byte[] end = {'\r', '\n', '\r', '\n'};
    for (int matched = 0, b; matched < end.length; ) {
      if ((b = in.read()) < 0) {
        throw new IOException("the client closed the connection inside the request head");
      }
      head.write(b);
      matched = b == end[matched] ? matched + 1 : (b == '\r' ? 1 : 0);
    }
    return head.toString(StandardCharsets.US_ASCII);
  }
}
