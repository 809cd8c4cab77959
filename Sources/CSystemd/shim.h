// CSystemd: the C surface rackd needs from libsystemd (sd-daemon, sd-journal, sd-bus).
// Only static inline wrappers for what Swift cannot call (C variadics); no logic lives here.
#ifndef RACKD_CSYSTEMD_SHIM_H
#define RACKD_CSYSTEMD_SHIM_H

// Without it sd-journal.h turns sd_journal_sendv into a macro that adds the C caller's CODE_FILE,
// CODE_LINE and CODE_FUNC; rackd sends the Swift caller's location itself (System/JournalFields.swift).
#define SD_JOURNAL_SUPPRESS_LOCATION 1

#include <stdint.h>
#include <sys/uio.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>
#include <systemd/sd-bus.h>

/// logind's Inhibit(what, who, why, mode) on org.freedesktop.login1.Manager, asynchronously: `callback`
/// gets the reply (a file descriptor, "h") from sd_bus_process. The slot is floating (owned by the bus).
static inline int csystemd_call_inhibit(sd_bus *bus, const char *what, const char *who, const char *why,
                                        const char *mode, sd_bus_message_handler_t callback, void *userdata) {
    return sd_bus_call_method_async(bus, NULL, "org.freedesktop.login1", "/org/freedesktop/login1",
                                    "org.freedesktop.login1.Manager", "Inhibit", callback, userdata, "ssss",
                                    what, who, why, mode);
}

#endif
