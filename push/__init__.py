"""The push engine: deliveries through FCM and APNs, broadLog, quarantine, local emulators.

Not built yet (issue 3). The store already holds its tables (delivery, broadlog, trackinglog,
address) and the gateway already records tracking calls against broadLog rows.
"""
