package dev.handshaker.client.keyless;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/** Runs curl or openssl as a real peer: its exit status and output, or a failure after a timeout. */
final class Command {
  record Result(int exit, String stdout, String stderr) {
    String all() {
      return "exit " + exit + "\nstdout:\n" + stdout + "\nstderr:\n" + stderr;
    }
  }

  private Command() {}

  static Result run(byte[] stdin, String... command) throws IOException, InterruptedException {
    Process p = new ProcessBuilder(command).start();
    CompletableFuture<byte[]> out = CompletableFuture.supplyAsync(() -> readAll(p.getInputStream()));
    CompletableFuture<byte[]> err = CompletableFuture.supplyAsync(() -> readAll(p.getErrorStream()));
    try (OutputStream in = p.getOutputStream()) {
      in.write(stdin);
    } catch (IOException exitedEarly) {
      // The peer may close its stdin first (a failed handshake); its output says why.
    }
    if (!p.waitFor(30, TimeUnit.SECONDS)) {
      p.destroyForcibly();
      throw new AssertionError(String.join(" ", command) + " did not finish within 30 s");
    }
    return new Result(p.exitValue(), new String(out.join(), StandardCharsets.UTF_8),
        new String(err.join(), StandardCharsets.UTF_8));
  }

  static boolean available(String tool) {
    for (String dir : System.getenv().getOrDefault("PATH", "").split(":")) {
      if (new java.io.File(dir, tool).canExecute()) {
        return true;
      }
    }
    return false;
  }

  private static byte[] readAll(java.io.InputStream in) {
    try {
      return in.readAllBytes();
    } catch (IOException e) {
      return new byte[0];
    }
  }

  static List<String> list(String... parts) {
    return List.of(parts);
  }
}
