//! Cross-crate interoperability: the broker against independent MQTT clients, one
//! binary (one link of the broker). Each module is one peer: the mosquitto command-line
//! clients, paho-mqtt for Python, rumqttc. See `tests/README.md` for what each covers.

mod mosquitto;
mod paho;
mod rumqttc;
