from media.netpath import source_address, source_address_netlink, source_address_socket


def test_loopback_source_address():
    assert source_address("127.0.0.1") == "127.0.0.1"
    assert source_address_netlink("127.0.0.5") == "127.0.0.1"
    assert source_address_socket("127.0.0.1") == "127.0.0.1"
