package dev.handshaker.client;

import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Assumptions;

/**
 * A `handshaker serve` process in a scratch directory, for the tests of every package: the
 * binary ($HANDSHAKER_BIN, else the project venv's), `handshaker keys ...` commands, a free
 * loopback port, and the process's start, pause, resume, kill and restart.
 */
public final class ServeProcess implements AutoCloseable {
  private static final long START_TIMEOUT_MS = 30_000;

  private final Path binary;
  private final Path root;
  private final Path log;
  private final int port;
  private final String address;
  private List<String> command = List.of();
  private volatile Process process;

  private ServeProcess(Path binary, String prefix) throws IOException {
    this.binary = binary;
    this.root = Files.createTempDirectory(prefix);
    this.log = root.resolve("service.log");
    this.port = freePort();
    this.address = "127.0.0.1:" + port;
  }

  /** A scratch directory and port for a service, or the test class aborted without the binary. */
  public static ServeProcess create(String prefix) throws IOException {
    String configured = System.getenv("HANDSHAKER_BIN");
    Path binary =
        configured != null && !configured.isBlank()
            ? Path.of(configured)
            : Path.of("../../.venv/bin/handshaker").toAbsolutePath().normalize();
    if (!Files.isExecutable(binary)) {
      Assumptions.abort(
          "the handshaker service binary is missing at "
              + binary
              + ": create the project venv (scripts/setup) or set HANDSHAKER_BIN");
    }
    return new ServeProcess(binary, prefix);
  }

  /** The scratch directory, removed by {@link #close()}. */
  public Path root() {
    return root;
  }

  /** The gRPC address, host:port. */
  public String address() {
    return address;
  }

  /** Runs `handshaker ARGS...` to completion; its stdout, or the test fails with its stderr. */
  public String run(String... args) throws IOException, InterruptedException {
    List<String> full = new ArrayList<>();
    full.add(binary.toString());
    full.addAll(List.of(args));
    Process p = new ProcessBuilder(full).start();
    p.getOutputStream().close();
    byte[] out = p.getInputStream().readAllBytes();
    byte[] err = p.getErrorStream().readAllBytes();
    if (!p.waitFor(60, TimeUnit.SECONDS)) {
      p.destroyForcibly();
      fail("handshaker " + String.join(" ", args) + " did not finish");
    }
    if (p.exitValue() != 0) {
      fail("handshaker " + String.join(" ", args) + " failed: " + new String(err, StandardCharsets.UTF_8));
    }
    return new String(out, StandardCharsets.UTF_8);
  }

  /** Starts `handshaker serve --listen ADDRESS --keystore KEYSTORE ARGS...` and waits until it listens. */
  public void start(Path keystore, String... serveArgs) throws IOException, InterruptedException {
    List<String> serve =
        new ArrayList<>(
            List.of(binary.toString(), "serve", "--listen", address, "--keystore", keystore.toString()));
    serve.addAll(List.of(serveArgs));
    command = List.copyOf(serve);
    launch();
  }

  private void launch() throws IOException, InterruptedException {
    process =
        new ProcessBuilder(command)
            .redirectErrorStream(true)
            .redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile()))
            .start();
    long deadline = System.currentTimeMillis() + START_TIMEOUT_MS;
    while (System.currentTimeMillis() < deadline) {
      if (!process.isAlive()) {
        String output = log();
        close();
        fail("handshaker serve exited with " + process.exitValue() + ":\n" + output);
      }
      try (Socket probe = new Socket()) {
        probe.connect(new InetSocketAddress("127.0.0.1", port), 200);
        return;
      } catch (IOException notYet) {
        Thread.sleep(100);
      }
    }
    String output = log();
    close();
    fail("handshaker serve did not listen on " + address + " within 30 s:\n" + output);
  }

  /** Stops the service process (SIGSTOP): it reads and answers nothing until {@link #resume()}. */
  public void pause() throws IOException, InterruptedException {
    signal("-STOP");
  }

  /** Lets a paused service run again (SIGCONT). */
  public void resume() throws IOException, InterruptedException {
    signal("-CONT");
  }

  /** Kills the service process (SIGKILL, a paused one too): the kernel closes its connections at once. */
  public void kill() throws InterruptedException {
    process.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
  }

  /** Starts the service again after {@link #kill()}: the same address, keystore and arguments. */
  public void restart() throws IOException, InterruptedException {
    launch();
  }

  private void signal(String signal) throws IOException, InterruptedException {
    Process kill = new ProcessBuilder("kill", signal, Long.toString(process.pid())).inheritIO().start();
    if (!kill.waitFor(10, TimeUnit.SECONDS) || kill.exitValue() != 0) {
      fail("kill " + signal + " " + process.pid() + " failed");
    }
  }

  /** The service's log so far, for failure messages. */
  public String log() {
    try {
      return Files.readString(log);
    } catch (IOException e) {
      return "(no log: " + e.getMessage() + ")";
    }
  }

  private static int freePort() throws IOException {
    try (ServerSocket probe = new ServerSocket()) {
      probe.bind(new InetSocketAddress("127.0.0.1", 0));
      return probe.getLocalPort();
    }
  }

  /** Stops the service (if it runs) and removes the scratch directory. */
  @Override
  public void close() throws IOException {
    Process running = process;
    if (running != null) {
      running.destroy();
      try {
        if (!running.waitFor(10, TimeUnit.SECONDS)) {
          running.destroyForcibly().waitFor(5, TimeUnit.SECONDS);
        }
      } catch (InterruptedException e) {
        running.destroyForcibly();
        Thread.currentThread().interrupt();
      }
    }
    try (Stream<Path> files = Files.walk(root)) {
      files.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
    }
  }
}
