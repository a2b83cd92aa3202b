"""The sending machinery: the delivery engine and its worker, the APNs and FCM providers, the
payload encoding (:mod:`push.payloads`) and the local APNs and FCM peers (:mod:`push.peers`).

What a message is, what its templates may read and how a delivery's status may change are domain
rules (:mod:`domain.messages`, :mod:`domain.templates`, :mod:`domain.delivery_status`): push
imports domain, never the reverse.
"""
