// Prints Quartz 2.3.2's own fire times, for vecron's differential cron tests.
//
// Reads lines "EXPR<TAB>TZ<TAB>AFTER_EPOCH_MILLIS<TAB>COUNT" from stdin and writes one
// line per input line: "ERR <message>" when Quartz rejects the expression, otherwise
// the epoch millis of the next COUNT fire times (CronExpression.getTimeAfter, chained),
// space-separated; fewer than COUNT when Quartz runs out (getTimeAfter returned null).
// A computation that runs for more than two seconds (Quartz can loop forever on some
// inputs) prints "ERR TIMEOUT" and is abandoned on a daemon thread.

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.util.Date;
import java.util.TimeZone;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.quartz.CronExpression;

public final class QuartzNext {
    private static ExecutorService newWorker() {
        return Executors.newSingleThreadExecutor(runnable -> {
            Thread thread = new Thread(runnable, "quartz-next");
            thread.setDaemon(true);
            return thread;
        });
    }

    private static String compute(String expression, String zone, long after, int count) {
        CronExpression cron;
        try {
            cron = new CronExpression(expression);
        } catch (Exception e) {
            return "ERR " + String.valueOf(e.getMessage()).replace('\n', ' ');
        }
        cron.setTimeZone(TimeZone.getTimeZone(zone));
        StringBuilder out = new StringBuilder();
        Date date = new Date(after);
        try {
            for (int i = 0; i < count; i++) {
                date = cron.getTimeAfter(date);
                if (date == null) {
                    break;
                }
                if (out.length() > 0) {
                    out.append(' ');
                }
                out.append(date.getTime());
            }
        } catch (RuntimeException e) {
            return "ERR " + e.getClass().getSimpleName() + ": " + e.getMessage();
        }
        return out.toString();
    }

    public static void main(String[] args) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        PrintWriter out = new PrintWriter(System.out, false, StandardCharsets.UTF_8);
        ExecutorService worker = newWorker();
        String line;
        while ((line = in.readLine()) != null) {
            String[] parts = line.split("\t", -1);
            if (parts.length != 4) {
                out.println("ERR bad input line");
                continue;
            }
            String expression = parts[0];
            String zone = parts[1];
            long after = Long.parseLong(parts[2]);
            int count = Integer.parseInt(parts[3]);
            Future<String> result = worker.submit(() -> compute(expression, zone, after, count));
            try {
                out.println(result.get(2, TimeUnit.SECONDS));
            } catch (TimeoutException e) {
                result.cancel(true);
                worker.shutdownNow();
                worker = newWorker();
                out.println("ERR TIMEOUT");
            }
        }
        out.flush();
    }
}
