//! viaspf's `Lookup` over the shared resolver.

use super::{Dns, LookupError};
use async_trait::async_trait;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use viaspf::lookup::{Lookup, LookupError as SpfLookupError, LookupResult, Name};

fn map<T>(r: Result<Vec<T>, LookupError>) -> LookupResult<Vec<T>> {
    match r {
        Ok(v) => Ok(v),
        // RFC 7208 §4.4 and §4.6.4: NXDOMAIN and NODATA both count as void lookups.
        Err(LookupError::NxDomain) => Err(SpfLookupError::NoRecords),
        Err(LookupError::NoData) => Ok(Vec::new()),
        Err(LookupError::Temporary(e)) if e.contains("timed out") => Err(SpfLookupError::Timeout),
        Err(LookupError::Temporary(e)) => Err(SpfLookupError::Dns(Some(e.into()))),
    }
}

#[async_trait]
impl Lookup for Dns {
    async fn lookup_a<'lookup, 'a>(&'lookup self, name: &'a Name) -> LookupResult<Vec<Ipv4Addr>> {
        map(self.a(name.as_str()).await)
    }

    async fn lookup_aaaa<'lookup, 'a>(
        &'lookup self,
        name: &'a Name,
    ) -> LookupResult<Vec<Ipv6Addr>> {
        map(self.aaaa(name.as_str()).await)
    }

    async fn lookup_mx<'lookup, 'a>(&'lookup self, name: &'a Name) -> LookupResult<Vec<Name>> {
        let v = map(self.mx(name.as_str()).await)?;
        Ok(v.into_iter()
            .filter_map(|(_, n)| Name::new(&n).ok())
            .collect())
    }

    async fn lookup_txt<'lookup, 'a>(&'lookup self, name: &'a Name) -> LookupResult<Vec<String>> {
        let v = map(self.txt(name.as_str()).await)?;
        Ok(v.into_iter()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .collect())
    }

    async fn lookup_ptr<'lookup>(&'lookup self, ip: IpAddr) -> LookupResult<Vec<Name>> {
        let v = map(self.ptr(ip).await)?;
        Ok(v.into_iter().filter_map(|n| Name::new(&n).ok()).collect())
    }
}
