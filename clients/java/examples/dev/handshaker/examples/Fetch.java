package dev.handshaker.examples;

import dev.handshaker.client.ClientConfig;
import dev.handshaker.client.HandshakeFailedException;
import dev.handshaker.client.HandshakerSocket;
import dev.handshaker.client.SessionInfo;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Fetches an https URL over a {@link HandshakerSocket}: the TLS handshake runs in the handshaker
 * service ($HANDSHAKER_ADDR, default 127.0.0.1:50051), the records are protected here.
 *
 * <pre>
 * Fetch URL [--ca-file PEM | --trust-bundle NAME] [--credential NAME] [--alpn PROTO]
 * </pre>
 */
public final class Fetch {
  private Fetch() {}

  public static void main(String[] args) throws IOException {
    if (args.length == 0) {
      System.err.println(
          "usage: Fetch https://HOST[:PORT]/PATH [--ca-file PEM | --trust-bundle NAME]"
              + " [--credential NAME] [--alpn PROTO]");
      System.exit(2);
    }
    URI url = URI.create(args[0]);
    ClientConfig.Builder config = ClientConfig.builder().alpnProtocols("http/1.1");
    for (int i = 1; i + 1 < args.length; i += 2) {
      switch (args[i]) {
        case "--ca-file" -> config.trustAnchorsPem(Files.readString(Path.of(args[i + 1])));
        case "--trust-bundle" -> config.trustBundle(args[i + 1]);
        case "--credential" -> config.credential(args[i + 1]);
        case "--alpn" -> config.alpnProtocols(args[i + 1]);
        default -> {
          System.err.println("unknown option " + args[i]);
          System.exit(2);
        }
      }
    }
    int port = url.getPort() == -1 ? 443 : url.getPort();
    String path = url.getRawPath() == null || url.getRawPath().isEmpty() ? "/" : url.getRawPath();
    try (HandshakerSocket socket = HandshakerSocket.connect(url.getHost(), port, config.build())) {
      SessionInfo session = socket.session();
      System.err.printf(
          "* %s %s, ALPN %s, server %s%n",
          session.protocol(),
          session.cipherSuite(),
          session.applicationProtocol().isEmpty() ? "none" : session.applicationProtocol(),
          session.peerSubject());
      OutputStream out = socket.getOutputStream();
      String request =
          "GET " + path + " HTTP/1.1\r\nHost: " + url.getHost() + "\r\nConnection: close\r\n\r\n";
      out.write(request.getBytes(StandardCharsets.US_ASCII));
      InputStream in = socket.getInputStream();
      in.transferTo(System.out);
      System.out.flush();
    } catch (HandshakeFailedException e) {
      System.err.printf(
          "handshake failed: alert %d (%s), %s: %s%n",
          e.alert(), dev.handshaker.client.Alert.name(e.alert()),
          e.sentByPeer() ? "sent by the server" : "raised by the service", e.reason());
      System.exit(1);
    }
  }
}
